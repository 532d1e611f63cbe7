"""What the tests and the benchmarks share (no tests here); bench/ imports only from here.

- ``harness``: the gateway in the test's event loop with its clients, the shared PKI.
- ``processes``: the gateway, the simulated meter and OPC UA load clients as processes.
- ``simulated_meter``, ``extra_catalogue``: what the simulator models; a catalogue row added.
- ``strategies``: Hypothesis strategies of the protocol cores; ``fuzz_targets``: the fuzzers.
- ``browser``: headless Chromium over CDP; ``web_page``: what the page shows.
- ``netns``: network namespaces and OpenVPN; ``loopback``: a small HTTP server.
- ``broker``: mosquitto with its PKI, an MQTT 5 subscriber, a TCP proxy that can go silent.
- ``garbled_line``: a proxy that damages a line; ``disks``: a tiny full disk.
- ``virtual_time``: the virtual-time loop; ``soak``: a week of the gateway on it;
  ``load_clients``: the OPC UA clients of the load test and bench.
- ``openapi_check``: the contract check of REST answers.
- ``pubsub_schema``: a JSON Schema of the PubSub JSON messages (Part 14) and its validator.
"""
