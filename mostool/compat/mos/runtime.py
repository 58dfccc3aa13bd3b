"""Initialisation, contexts and running: ``mtcp_init``/``getconf``/``setconf``,
``mtcp_create_context``, ``mtcp_app_join``, ``mtcp_destroy*``, signals."""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import signal as _signal
import sys
from collections.abc import Callable
from typing import Any

from mostool.compat.mos.conf import _make_conf, _open_source, _parse_mos_conf
from mostool.compat.mos.context import _ctx, mctx_t
from mostool.compat.mos.errors import _S, _fail, _mos_fail
from mostool.compat.mos.structs import mtcp_conf
from mostool.errors import CallbackError, MosError


def mtcp_init(conf: str | os.PathLike[str] | dict[str, Any]) -> int:
    """Load the configuration: a mOS config file path, or a dict.

    The dict names the packet source: ``{"source": "capture.pcap"}`` (a path, a list of paths
    merged by time, a :class:`~mostool.Source`, or a list of frame tuples) or
    ``{"interface": "eth0"}`` (live capture through ``mostool.live``), plus configuration
    keys: mOS's ``rmem_size`` (-> rcvbuf), ``tcp_timeout`` (-> idle_timeout; <= 0 = never),
    ``tcp_tw_interval`` (-> time_wait), ``max_concurrency`` (-> max_flows), any
    :class:`~mostool.MonitorConfig` field (``midstream``, ``mos_compat``, ...), and replay
    pacing (``speed``, ``pps``, ``mbps``, ``max_gap``). A mos.conf file's ``netdev`` block names
    interfaces; ``source = a.pcap b.pcap`` in its ``mos`` block (a mostool extension) replays
    files. mOS keys with no meaning here (``forward``, ``nb_mem_channels``, ...) are ignored.
    Unset values are mostool's defaults (not mOS's 8 KB buffer and 30 s timeout).

    Returns 0; -1 with ENOENT (no such file), EINVAL (bad key, value or capture file), EBUSY
    (contexts still exist; ``mtcp_destroy`` first).
    """
    if _S.contexts:
        return _fail(_errno.EBUSY, "contexts exist: call mtcp_destroy() before mtcp_init()")
    try:
        if isinstance(conf, dict):
            spec = dict(conf)
        elif isinstance(conf, (str, os.PathLike)):
            spec = _parse_mos_conf(os.fspath(conf))
        else:
            return _fail(_errno.EINVAL, f"conf must be a path or a dict, not "
                                        f"{type(conf).__name__}")
        _S.conf = _make_conf(spec)
    except FileNotFoundError as exc:
        return _fail(_errno.ENOENT, f"{exc.filename}: no such file")
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. replay.CaptureError: a one-line error
        return _fail(_errno.EINVAL, str(exc))
    return 0


def mtcp_getconf(conf: mtcp_conf) -> int:
    """Fill ``conf`` from the current configuration. -1/EPERM before ``mtcp_init``, EINVAL if
    ``conf`` is not an :class:`mtcp_conf`."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first")
    if not isinstance(conf, mtcp_conf):
        return _fail(_errno.EINVAL, "conf must be an mtcp_conf")
    c = _S.conf.config
    conf.num_cores = 1
    conf.cpu_mask = 1
    conf.max_concurrency = c.max_flows
    conf.max_num_buffers = c.max_flows
    conf.rcvbuf_size = c.rcvbuf
    conf.sndbuf_size = 0
    conf.tcp_timewait = c.time_wait
    conf.tcp_timeout = -1 if c.idle_timeout is None else c.idle_timeout
    return 0


def mtcp_setconf(conf: mtcp_conf) -> int:
    """Apply ``conf`` to contexts created from now on. -1/EPERM before ``mtcp_init``; EINVAL
    for ``num_cores`` != 1 (mostool runs one engine fed with every packet; mOS's per-core RSS
    sharding is not modelled) or a bad value."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first")
    if not isinstance(conf, mtcp_conf):
        return _fail(_errno.EINVAL, "conf must be an mtcp_conf")
    if conf.num_cores != 1:
        return _fail(_errno.EINVAL, f"num_cores must be 1 (one engine), not {conf.num_cores}")
    try:
        timeout = None if conf.tcp_timeout is None or conf.tcp_timeout <= 0 \
            else float(conf.tcp_timeout)
        _S.conf.config = _S.conf.config.replace(
            max_flows=int(conf.max_concurrency), rcvbuf=int(conf.rcvbuf_size),
            time_wait=float(conf.tcp_timewait), idle_timeout=timeout)
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    return 0


def mtcp_create_context(cpu: int) -> mctx_t | None:
    """A context (a :class:`~mostool.Monitor`) for core ``cpu``. ``None`` with EPERM before
    ``mtcp_init``, EINVAL for a cpu other than 0 (``num_cores`` is 1), EEXIST if that core
    already has a context."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first", None)
    if cpu != 0:
        return _fail(_errno.EINVAL, f"cpu {cpu} out of range: mostool runs one context (cpu 0)",
                     None)
    if cpu in _S.contexts:
        return _fail(_errno.EEXIST, f"cpu {cpu} already has a context", None)
    ctx = mctx_t(cpu, _S.conf.config)
    _S.contexts[cpu] = ctx
    _S.by_engine[id(ctx.monitor.engine)] = ctx
    return ctx


def mtcp_app_join(mctx: mctx_t) -> int:
    """Run the configured source to completion through this context (mOS: park the application
    thread while mOS runs). Every open flow ends (``ON_CONN_END``) when the source ends or the
    context is destroyed (e.g. from a signal handler). Returns 0; -1 with EACCES (bad
    context), EALREADY (already run), EINVAL (no source) or EIO (the source failed). mOS's
    version returns void. Callbacks that raised are reported in one line on stderr and kept
    in ``mctx.monitor.failures``."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ctx._joined or ctx._running:
        return _fail(_errno.EALREADY, "this context has already run")
    assert _S.conf is not None
    try:
        source = _open_source(_S.conf)
    except ImportError as exc:
        return _fail(_errno.ENOSYS, f"live capture is not available: {exc}")
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, exc.strerror or str(exc))
    except Exception as exc:  # noqa: BLE001 - capture/interface errors: a one-line error
        return _fail(_errno.EIO, str(exc))
    ctx._running = True
    try:
        ctx.stats = ctx.monitor.run(source)
    except CallbackError:
        raise
    except MosError as exc:
        return _mos_fail(exc)
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, str(exc))
    finally:
        ctx._running = False
        ctx._joined = True
        if ctx._destroy_after_run:
            _forget(ctx)
        if _S.destroy_pending and not any(c._running for c in _S.contexts.values()):
            saved = (_S.errno, _S.errmsg)
            mtcp_destroy()
            _S.errno, _S.errmsg = saved
    failures = ctx.monitor.failures
    if failures:
        sys.stderr.write(f"mostool: {len(failures)} callback/filter error(s); "
                         f"first: {failures[0]}\n")
    return 0


def _forget(ctx: mctx_t) -> None:
    ctx._destroyed = True
    if _S.contexts.get(ctx.cpu) is ctx:
        del _S.contexts[ctx.cpu]
    _S.by_engine.pop(id(ctx.monitor.engine), None)


def mtcp_destroy_context(mctx: mctx_t) -> int:
    """Destroy a context. A running one (e.g. from a signal handler) stops after the current
    packet, its open flows end with reason "stopped" (their callbacks still run) and
    ``mtcp_app_join`` returns; an idle one ends its open flows. -1/EACCES for a bad
    context."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ctx._running:
        ctx._destroy_after_run = True
        ctx.monitor.stop()
        return 0
    ctx.monitor.close()
    _forget(ctx)
    return 0


def mtcp_destroy() -> int:
    """Destroy every context and forget the configuration, errno, the error switch and the
    signal handlers installed here. UDE definitions survive, as mOS's global event forest.
    Called while a context runs (a signal handler), it stops the run and takes effect when
    ``mtcp_app_join`` returns."""
    running = [c for c in _S.contexts.values() if c._running]
    if running:
        for ctx in running:
            ctx._destroy_after_run = True
            ctx.monitor.stop()
        _S.destroy_pending = True
        return 0
    for ctx in list(_S.contexts.values()):
        ctx.monitor.close()
        ctx._destroyed = True
    for signum, old in _S.signals.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            _signal.signal(signum, old)
    _S.reset()
    return 0


def mtcp_core_affinitize(cpu: int) -> int:
    """Nothing to pin (one engine, the caller's thread): 0 for cpu 0, -1/EINVAL otherwise."""
    if cpu != 0:
        return _fail(_errno.EINVAL, f"cpu {cpu} out of range")
    return 0


def mtcp_init_rss(mctx: mctx_t, saddr_base: Any, num_addr: int, daddr: Any, dport: Any) -> int:
    """An endpoint (mTCP) call: -1/ENOSYS, mostool only monitors."""
    return _fail(_errno.ENOSYS, "mtcp_init_rss is for mTCP endpoints; mostool only monitors")


def mtcp_register_signal(signum: int, handler: Callable[[int], Any] | None
                         ) -> Callable[[int], Any] | None:
    """Install ``handler(signum)`` for ``signum`` (``mtcp_destroy_context`` in it stops a
    running context). Returns ``handler`` as mOS does; ``None`` with EINVAL for a bad signal
    or handler."""
    if handler is None or not callable(handler):
        return _fail(_errno.EINVAL, "handler must be callable", None)

    def on_signal(num: int, frame: Any) -> None:
        handler(num)
    try:
        old = _signal.signal(signum, on_signal)
    except (ValueError, OSError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc), None)
    _S.signals.setdefault(signum, old)
    return handler
