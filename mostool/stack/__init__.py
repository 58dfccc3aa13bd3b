"""The sans-IO engine: which module owns which step of a packet's way.

A frame enters by ``engine.Engine.process(ts, linktype, frame, wire_len)`` (or a classic pcap's
records by ``Engine.process_records``) and goes, in order:

1. ``records``    the fused in-place reader: a plain ACK or in-order data of an established,
                  unsubscribed flow is handled on the spot (its module docstring lists the
                  conditions; compiled, ``record_blocks`` reads the mapped file in blocks and
                  ``csum`` sums checksums in C); everything else goes to ``Engine.process``.
2. ``clock``      a frame far ahead of the packet clock waits for the next one (one wild
                  timestamp, or a real gap);
   ``timers``     what falls due before the frame fires first (user timers, TIME_WAIT, idle
                  timeouts), in packet time; ``emit`` raises ON_PKT_IN to RAW listeners.
3. ``decode``     link layer -> IPv4/IPv6 -> TCP into a ``TcpSegment`` (or a status from
                  ``codes``: an orphan), with ``ipfrag`` reassembling IP fragments and
                  ``tcpfields`` reading the checksum, options and addresses; ``decap`` takes
                  non-TCP IP packets into tunnels (``tunnels``, one hop at a time) and
                  other link types to ``linktypes``; a tunnelled segment's key ends with
                  its tunnel's.
4. ``flowtable``  the 4-tuple finds the ``connection.Connection``; a miss is a new flow for the
                  listeners ``FlowTable.admit`` names (``listener.stream_params`` says how
                  its half-streams are made when a side needs one, ``stream_spec``;
                  ``tcp.opening`` its stacks) or an orphan; ``tcp`` decides
                  whether a SYN on a tracked 4-tuple is the same connection.
5. ``tcp``        the sender's and the receiver's state changes (the table, input derivation,
                  ISN bookkeeping, FIN/RST acceptability: every state decision), with
                  ``resets`` for what an accepted RST leaves provisional;
   ``payload``    the bytes into the receiver's ``stream.HalfStream`` and the holes an ACK
                  gives up; ``zeek`` records the connection's history on the way.
6. ``emit``       the one funnel every event leaves by, counted once per raise, to the flow's
                  handles (``flow.Flow``) or the listeners (``listener``) through
                  ``mostool.events.dispatch``.
7. ``payload``    ``MemoryBudget`` keeps the bytes all flows hold under the limit;
   ``engine``     ends the flow (``emit`` raises ON_CONN_END; ``timers`` holds it through
                  TIME_WAIT; ``records.RecordRefs`` decodes a last packet read in place).

``engine`` holds the route itself: it calls each step in this order and owns nothing else.

``config.MonitorConfig`` is the engine's configuration (``mostool.config`` re-exports it). The
engine imports only ``mostool.stack``, ``mostool.events`` and ``mostool.errors``
(tests/test_sansio.py), reads no clock and does no I/O.
"""
