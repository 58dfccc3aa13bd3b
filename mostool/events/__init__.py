"""The event vocabulary and its delivery, shared by the engine and the public face.

    types.py     every built-in event as a frozen value, with when it fires, for which side,
                 at which hook (imports nothing from mostool)
    ude.py       user-defined events: a filter on a base event (define_event, alloc_event)
    dispatch.py  SubscriptionSet (interned, compiled per hook) and Dispatcher (runs callbacks
                 and UDE filter trees; reports user-code failures)
    trace.py     one JSON-ready record per dispatched event (what `mostool events` prints)
"""
