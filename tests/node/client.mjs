// An independent OPC UA client (node-opcua) against the SMX gateway, for
// tests/integration/test_node_opcua.py (which installs it: npm ci in this folder).
//
// Reads {"jobs": {name: job, ...}} as JSON from stdin, runs the jobs at once (one
// client, secure channel and session each) and prints one JSON object {name: result, ...}
// as the last line of stdout (node-opcua may print a warning before it). Exit status 0
// when every job ran all its steps, 1 otherwise; a result says where it stopped and why
// ("step", "error"). The test decides what is right; this script only reports.
//
// Job: {endpoint, securityPolicy, securityMode, applicationUri, certificateFile,
//       privateKeyFile, pkiRoot, serverCertificateFile (optional), user: {name, password},
//       namespaceUri, meter, voltage, notifications,
//       history: {node, start, end, intervalMs, raw: [suffix], processed: [[suffix, aggregate]]},
//       register: {day, values, unit, replace}, readProfile: {day},
//       alarms: {condition, comment},
//       steps: ["browse", "read", "subscribe", "history", "alarms", "advice", "register", "readProfile"],
//       and for another server than the gateway (the head-end's portfolios), optional:
//       browsePath: [names from Objects to the folder], target: the string NodeId browsed to and
//       read, methodObject: the string NodeId the methods are called on, methodNames:
//       {advice, register, readProfile} -> the methods' BrowseNames}

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import {
    AggregateFunction,
    AttributeIds,
    BrowseDirection,
    DataChangeFilter,
    DataChangeTrigger,
    DataType,
    DeadbandType,
    MessageSecurityMode,
    OPCUAClient,
    SecurityPolicy,
    TimestampsToReturn,
    UserTokenType,
    VariantArrayType,
    acknowledgeCondition,
    callConditionRefresh,
    constructEventFilter,
    makeNodeId,
    resolveNodeId,
    setErrorLogger,
    setWarningLogger,
} from "node-opcua-client";

// Keep stdout for the result.
setWarningLogger((...args) => console.error(...args));
setErrorLogger((...args) => console.error(...args));

const { jobs } = JSON.parse(await readStdin());
const names = Object.keys(jobs);
const results = await Promise.all(names.map((name) => run(jobs[name])));
const report = Object.fromEntries(names.map((name, i) => [name, results[i]]));
process.stdout.write(`\n${JSON.stringify(report)}\n`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

async function run(job) {
    const result = { ok: false, step: "setup" };
    let client;
    let session;
    try {
        const certificateManager = new OPCUACertificateManager({
            rootFolder: job.pkiRoot,
            automaticallyAcceptUnknownCertificate: false,
            disableFileWatchers: true,
        });
        await certificateManager.initialize();
        // The gateway's certificate: fetched by node-opcua with GetEndpoints on a None
        // channel and checked against this trust list, or (serverCertificateFile) known
        // beforehand, as an administrator hands it out, and checked here with the same
        // trust-list call, since node-opcua does not check a certificate given to it.
        let serverCertificate;
        if (job.serverCertificateFile) {
            result.step = "trust";
            serverCertificate = readFileSync(job.serverCertificateFile);
            const trust = await certificateManager.checkCertificate(serverCertificate);
            result.serverTrust = trust.name;
            if (!trust.isGood()) throw new Error(`server certificate refused: ${trust.name}`);
        }
        client = OPCUAClient.create({
            applicationName: "SMX node-opcua test client",
            applicationUri: job.applicationUri,
            clientCertificateManager: certificateManager,
            certificateFile: job.certificateFile,
            privateKeyFile: job.privateKeyFile,
            serverCertificate,
            securityPolicy: SecurityPolicy[job.securityPolicy],
            securityMode: MessageSecurityMode[job.securityMode],
            connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 500 },
            requestedSessionTimeout: 30000,
        });

        result.step = "connect";
        await client.connect(job.endpoint);
        result.step = "session";
        session = await client.createSession({
            type: UserTokenType.UserName,
            userName: job.user.name,
            password: job.user.password,
        });
        result.connect = {
            securityPolicy: client.securityPolicy,
            securityMode: MessageSecurityMode[client.securityMode],
            serverCertificateThumbprint: thumbprint(client.serverCertificate),
        };

        result.step = "namespace";
        const namespaces = await readNamespaces(session);
        const ns = namespaces.indexOf(job.namespaceUri);
        result.namespaceIndex = ns;
        if (ns < 0) throw new Error(`namespace ${job.namespaceUri} not in ${JSON.stringify(namespaces)}`);
        const voltage = makeNodeId(job.target ?? `${job.meter}.${job.voltage}`, ns);

        for (const step of job.steps) {
            result.step = step;
            switch (step) {
                case "browse":
                    result.browse = await browseToVoltage(session, ns, job);
                    break;
                case "read":
                    result.read = dataValue(await session.read({ nodeId: voltage, attributeId: AttributeIds.Value }, 0));
                    break;
                case "subscribe":
                    result.subscription = await subscribe(session, voltage, job.notifications ?? 3);
                    break;
                case "history":
                    result.history = await history(session, ns, job.history);
                    break;
                case "alarms":
                    result.alarms = await alarms(session, job.alarms);
                    break;
                default: // "advice", "register", "readProfile"
                    result.methods = { ...result.methods, [step]: await callMethod(session, ns, job, step) };
            }
        }
        result.step = "close";
        await session.close();
        session = undefined;
        await client.disconnect();
        client = undefined;
        result.ok = true;
    } catch (err) {
        result.error = String(err?.message ?? err);
    } finally {
        if (session) await session.close().catch(() => {});
        if (client) await client.disconnect().catch(() => {});
    }
    return result;
}

// -- steps ------------------------------------------------------------------------------

async function browseToVoltage(session, ns, job) {
    // Objects (i=85) -> SMX -> Meters -> <meter> -> Instantaneous -> the voltage variable,
    // each step found by its BrowseName in the SMX namespace.
    const path = job.browsePath ?? ["SMX", "Meters", job.meter, "Instantaneous"];
    let nodeId = "i=85";
    for (const name of path) {
        const refs = await browseAll(session, nodeId);
        const ref = refs.find((r) => r.browseName.name === name && r.browseName.namespaceIndex === ns);
        if (!ref) throw new Error(`no ${name} under ${nodeId}: ${refs.map((r) => r.browseName.toString())}`);
        nodeId = ref.nodeId;
    }
    const refs = await browseAll(session, nodeId);
    const wanted = job.target ?? `${job.meter}.${job.voltage}`;
    const voltage = refs.find((r) => r.nodeId.namespace === ns && r.nodeId.value === wanted);
    if (!voltage) throw new Error(`no ${wanted} in ${nodeId}: ${refs.map((r) => r.nodeId.toString())}`);
    const properties = await browseAll(session, voltage.nodeId);
    const unitsRef = properties.find((r) => r.browseName.name === "EngineeringUnits");
    const units = unitsRef ? (await session.read({ nodeId: unitsRef.nodeId, attributeId: AttributeIds.Value })).value.value : null;
    return {
        path,
        folderNodeId: nodeId.toString(),
        children: refs.length,
        nodeId: voltage.nodeId.toString(),
        browseName: voltage.browseName.name,
        browseNamespace: voltage.browseName.namespaceIndex,
        displayName: voltage.displayName.text,
        nodeClass: voltage.nodeClass,
        engineeringUnits: units ? { displayName: units.displayName?.text, unitId: units.unitId } : null,
    };
}

async function subscribe(session, nodeId, wanted) {
    const subscription = await session.createSubscription2({
        requestedPublishingInterval: 250,
        requestedLifetimeCount: 240,
        requestedMaxKeepAliveCount: 20,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
    });
    const notifications = [];
    let received;
    const enough = new Promise((resolve) => (received = resolve));
    const item = await subscription.monitor(
        { nodeId, attributeId: AttributeIds.Value },
        {
            samplingInterval: 250,
            queueSize: 10,
            discardOldest: true,
            filter: new DataChangeFilter({
                trigger: DataChangeTrigger.StatusValueTimestamp,
                deadbandType: DeadbandType.None,
            }),
        },
        TimestampsToReturn.Both,
    );
    // Until `wanted` different samples (source timestamps) have arrived.
    const samples = new Set();
    item.on("changed", (dv) => {
        const value = dataValue(dv);
        notifications.push(value);
        samples.add(value.sourceTimestamp);
        if (samples.size >= wanted) received();
    });
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${samples.size} of ${wanted} samples in 15 s`)), 15000);
    });
    try {
        await Promise.race([enough, timeout]);
    } finally {
        clearTimeout(timer);
    }
    const revised = subscription.publishingInterval;
    await subscription.terminate();
    return { publishingInterval: revised, notifications };
}

// History of the node `spec.node` and of its components (`spec.raw`: NodeId suffixes,
// "" for the node itself, ".MinuteMinimum", ...): each one's raw values over
// [start, end), and the aggregates `spec.processed` ([suffix, AggregateFunction name])
// over the same range and processing interval, read with node-opcua's own helpers.
async function history(session, ns, spec) {
    const start = new Date(spec.start);
    const end = new Date(spec.end);
    const values = (r) => (r.historyData?.dataValues ?? []).map(dataValue);
    const raw = [];
    for (const suffix of spec.raw ?? [""]) {
        const answer = await session.readHistoryValue({ nodeId: makeNodeId(spec.node + suffix, ns) }, start, end, {
            timestampsToReturn: TimestampsToReturn.Both,
            numValuesPerNode: 0,
            returnBounds: false,
            isReadModified: false,
        });
        raw.push({
            node: suffix,
            statusCode: status(answer.statusCode),
            continuation: !!answer.continuationPoint?.length,
            values: values(answer),
        });
    }
    const processed = [];
    for (const [suffix, aggregate] of spec.processed ?? [["", "Average"]]) {
        const fn = AggregateFunction[aggregate];
        if (fn === undefined) throw new Error(`node-opcua knows no aggregate ${aggregate}`);
        const answer = await session.readAggregateValue(
            { nodeId: makeNodeId(spec.node + suffix, ns) },
            start,
            end,
            fn,
            spec.intervalMs,
        );
        processed.push({
            node: suffix,
            aggregate,
            statusCode: status(answer.statusCode),
            continuation: !!answer.continuationPoint?.length,
            values: values(answer),
        });
    }
    return { raw, processed };
}

// Alarms & Conditions (OPC 10000-9) as node-opcua's helpers do them: events of the Server
// object, ConditionRefresh into the subscription (RefreshStart, the retained conditions,
// RefreshEnd), Acknowledge of the condition `spec.condition` with the EventId it was shown.
// (Constants inside: the jobs run before the module's later declarations are initialised.)
async function alarms(session, spec) {
    const ALARM_FIELDS = [
        "EventId", "EventType", "ConditionName", "SourceName", "Severity", "Message", "Retain",
        "ActiveState.Id", "AckedState.Id", "ConditionId", "ClientUserId", "Comment",
    ];
    const REFRESH_START = 2787;
    const REFRESH_END = 2788;
    const subscription = await session.createSubscription2({
        requestedPublishingInterval: 100,
        requestedLifetimeCount: 600,
        requestedMaxKeepAliveCount: 20,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
    });
    const events = [];
    let wake = () => {};
    const item = await subscription.monitor(
        { nodeId: "i=2253", attributeId: AttributeIds.EventNotifier },
        { queueSize: 1000, discardOldest: false, filter: constructEventFilter(ALARM_FIELDS) },
        TimestampsToReturn.Both,
    );
    item.on("changed", (values) => {
        events.push(Object.fromEntries(ALARM_FIELDS.map((name, i) => [name, eventField(values[i]?.value)])));
        wake();
    });
    const next = async (from, predicate) => {
        const deadline = Date.now() + 20000;
        for (;;) {
            const index = events.findIndex((e, i) => i >= from && predicate(e));
            if (index >= 0) return index;
            if (Date.now() > deadline) throw new Error(`no such event in 20 s: ${JSON.stringify(events)}`);
            await new Promise((resolve) => {
                wake = resolve;
                setTimeout(resolve, 200);
            });
        }
    };
    const isType = (id) => (e) => e.EventType === `ns=0;i=${id}`;
    const refreshStatus = await callConditionRefresh(session, subscription.subscriptionId);
    const start = await next(0, isType(REFRESH_START));
    const end = await next(start, isType(REFRESH_END));
    const refreshed = events.slice(start + 1, end);
    const shown = refreshed.find((e) => e.ConditionName === spec.condition);
    if (!shown) throw new Error(`${spec.condition} not refreshed: ${JSON.stringify(refreshed)}`);
    const ackStatus = await acknowledgeCondition(
        session,
        resolveNodeId(shown.ConditionId),
        Buffer.from(shown.EventId, "hex"),
        spec.comment,
    );
    if (ackStatus.value !== 0) throw new Error(`Acknowledge answered ${ackStatus.name}`);
    const acked = events[await next(end, (e) => e.ConditionName === spec.condition && e["AckedState.Id"] === true)];
    await subscription.terminate();
    return { refreshStatus: status(refreshStatus), refreshed, ackStatus: status(ackStatus), acked };
}

// An event field as JSON: a ByteString as hex, a LocalizedText as its text, a NodeId as
// its string ("i=2788", "ns=2;s=meter1.Alarms.TerminalCover").
function eventField(value) {
    if (value === null || value === undefined) return null;
    if (Buffer.isBuffer(value)) return value.toString("hex");
    if (typeof value === "object" && "text" in value) return value.text;
    if (typeof value === "object" && "namespace" in value && "identifierType" in value) return value.toString();
    return plain(value);
}

async function callMethod(session, ns, job, step) {
    const market = job.methodObject
        ? makeNodeId(job.methodObject, ns)
        : await findChild(session, makeNodeId(job.meter, ns), "Market", ns);
    const names = job.methodNames ?? { advice: "ComputeAdvice", register: "RegisterProfile", readProfile: "ReadProfile" };
    const method = names[step];
    if (!method) throw new Error(`unknown step ${step}`);
    const methodId = await findChild(session, market, method, ns);
    let inputArguments;
    if (step === "advice") {
        // DateTime.MinValue (1601-01-01): the advice now.
        inputArguments = [{ dataType: DataType.DateTime, value: new Date(Date.UTC(1601, 0, 1)) }];
    } else if (step === "register") {
        const r = job.register;
        inputArguments = [
            { dataType: DataType.String, value: r.day },
            { dataType: DataType.Double, arrayType: VariantArrayType.Array, value: Float64Array.from(r.values) },
            { dataType: DataType.String, value: r.unit },
            { dataType: DataType.Boolean, value: r.replace },
        ];
    } else {
        inputArguments = [{ dataType: DataType.String, value: job.readProfile.day }];
    }
    const answer = await session.call({ objectId: market, methodId, inputArguments });
    // Output names from the method's OutputArguments property (Argument structures).
    const outputsRef = (await browseAll(session, methodId)).find((r) => r.browseName.name === "OutputArguments");
    const declared = outputsRef
        ? (await session.read({ nodeId: outputsRef.nodeId, attributeId: AttributeIds.Value })).value.value
        : [];
    const outputNames = declared.map((a) => a.name);
    const outputs = {};
    (answer.outputArguments ?? []).forEach((v, i) => (outputs[outputNames[i] ?? `#${i}`] = plain(v.value)));
    return {
        statusCode: status(answer.statusCode),
        inputArgumentResults: (answer.inputArgumentResults ?? []).map(status),
        outputs,
    };
}

// -- helpers ----------------------------------------------------------------------------

async function browseAll(session, nodeId) {
    let browsed = await session.browse({
        nodeId,
        browseDirection: BrowseDirection.Forward,
        referenceTypeId: "HierarchicalReferences",
        includeSubtypes: true,
        nodeClassMask: 0,
        resultMask: 63,
    });
    if (!browsed.statusCode.isGood()) throw new Error(`browse ${nodeId}: ${browsed.statusCode.toString()}`);
    const refs = [...(browsed.references ?? [])];
    while (browsed.continuationPoint?.length) {
        browsed = await session.browseNext(browsed.continuationPoint, false);
        refs.push(...(browsed.references ?? []));
    }
    return refs;
}

async function findChild(session, nodeId, name, ns) {
    const ref = (await browseAll(session, nodeId)).find(
        (r) => r.browseName.name === name && r.browseName.namespaceIndex === ns,
    );
    if (!ref) throw new Error(`no ${name} under ${nodeId.toString()}`);
    return ref.nodeId;
}

async function readNamespaces(session) {
    const dv = await session.read({ nodeId: "i=2255", attributeId: AttributeIds.Value });
    return dv.value.value;
}

function dataValue(dv) {
    return {
        value: plain(dv.value?.value),
        dataType: DataType[dv.value?.dataType ?? DataType.Null],
        statusCode: status(dv.statusCode),
        sourceTimestamp: dv.sourceTimestamp ? dv.sourceTimestamp.toISOString() : null,
        serverTimestamp: dv.serverTimestamp ? dv.serverTimestamp.toISOString() : null,
    };
}

function status(code) {
    return { name: code.name, value: code.value };
}

function plain(value) {
    if (value instanceof Date) return value.toISOString();
    if (ArrayBuffer.isView(value) || Array.isArray(value)) return Array.from(value, plain);
    if (typeof value === "number" && !Number.isFinite(value)) return String(value); // NaN, Infinity
    if (typeof value === "bigint") return Number(value);
    return value;
}

function thumbprint(certificate) {
    if (!certificate) return null;
    const der = Array.isArray(certificate) ? certificate[0] : certificate;
    return der ? createHash("sha1").update(der).digest("hex") : null;
}

async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString("utf8");
}
