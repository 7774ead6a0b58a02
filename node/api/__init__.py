"""Front ends only: etcd v3's JSON gateway today, gRPC next; nothing below imports this.

Modules, one job each:
    gateway     routes, unary handlers and the watch / keep-alive streams
    codec       gateway JSON <-> the state machine's request and response values
    gojson      Go's encoding/json rules the codec needs (numbers, escapes, errors)
    jsonstream  splitting a streamed body into messages, linear in its bytes
    watchreq    a watch message's gRPC size and grpc-gateway's stream error chunk
    errors      the one table: each of node.errors' values -> gRPC code, HTTP status, body
    observer    GatewayObserver, the gateway's events (the exporter implements it)
"""
