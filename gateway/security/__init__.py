"""Who may do what (DESIGN §8): the PKI and trust list (:mod:`~gateway.security.pki`), the
users file (:mod:`~gateway.security.users`), logins shared by OPC UA and the web
(:mod:`~gateway.security.auth`), and listeners bound to the tunnel address
(:mod:`~gateway.security.netbind`). Protocol-neutral: the OPC UA guard and the web
sessions build on it."""
