"""The sans-IO engine: frames in, flows and events out (imports only itself, mostool.events and
mostool.errors; no I/O, no wall clock).

A packet's way, module by module:

    engine.py     Engine.process: the per-frame pipeline in order (its docstring lists the six
                  steps); timers due before the frame fire first (timers.py)
    listener.py   what the engine knows of a monitoring socket (RAW listeners see the frame)
    decode.py     Decoder: link layer -> IPv4/IPv6 -> TcpSegment or a status (an orphan);
                  ipfrag.py reassembles IP fragments, tcpfields.py reads checksums, options and
                  addresses
    flowtable.py  the directional 4-tuple key finds the Connection; new flows get their
                  half-streams here; recently closed keys are remembered
    tcp.py        the TCP state table and everything that derives its inputs (sender and
                  receiver updates, ISN and SYN bookkeeping, FIN/RST acceptability, whether a
                  SYN on a tracked 4-tuple is the same connection)
    payload.py    a segment's bytes into the receiver's half-stream; the sender's ACK gives up
                  holes; bad-checksum segments set aside
    stream.py     HalfStream: one side's byte stream (in-order point, out-of-order runs,
                  buffer, gaps, retransmissions, conflicts) and its outbox of runs
    emit.py       Emitter: the one funnel every event leaves through, counted
    connection.py Connection (the engine's per-flow state), PacketInfo
    flow.py       Flow (a listener's handle: peek, options, per-flow callbacks)
    records.py    the fused in-place reader of classic-pcap records (the fast path's copy;
                  its docstring lists the conditions both copies implement)
    config.py     MonitorConfig (re-exported as mostool.MonitorConfig)
"""
