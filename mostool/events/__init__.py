"""The event vocabulary and its delivery.

``types``     the built-in events (frozen values), hooks, sides and TCP states: the shared
              vocabulary, importing no other mostool module; it documents when each event fires
              and their order within a packet.
``ude``       user-defined events: a filter on a base event (mOS ``mtcp_define_event``).
``dispatch``  subscriptions compiled into per-hook plans, and the Dispatcher that runs callbacks
              and UDE filters, counting and reporting what user code raises
              (``report_failure``). The engine's Emitter (mostool/stack/emit.py) is the one
              funnel that calls it.
``trace``     one JSON-ready record per dispatched event: what golden traces compare.
"""
