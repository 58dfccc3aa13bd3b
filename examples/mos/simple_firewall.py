#!/usr/bin/env python3
"""simple_firewall in monitor mode: which flows would the rules have blocked?

A port of mOS's samples/simple_firewall/simple_firewall.c to mostool's mOS facade. A UDE on
ON_PKT_IN whose filter (``CatchInitSYN``) reads the packet with ``mtcp_getlastpkt`` catches each
flow's first SYN; its callback looks the flow up in the rule table. mOS drops the SYN of a flow
a DROP rule matches (``mtcp_setlastpkt(..., MOS_DROP)``); mostool is a passive monitor, so this
port reports the flow instead. Either way the flow is then no longer monitored (mOS only does
that for accepted flows; here a blocked flow's SYN retransmissions are not counted again). The
rule table with per-rule flow counts is printed every second of packet time, as in mOS, and
once more when the capture ends.

    python examples/mos/simple_firewall.py -r capture.pcap [-f rules] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from mostool.compat.mos import (
    AF_INET,
    MOS_DROP,
    MOS_HK_SND,
    MOS_NULL_EVENT,
    MOS_ON_PKT_IN,
    MOS_SIDE_BOTH,
    MOS_SOCK_MONITOR_STREAM,
    MOS_STOP_MON,
    SOL_MONSOCKET,
    mctx_t,
    mtcp_app_join,
    mtcp_close,
    mtcp_conf,
    mtcp_create_context,
    mtcp_define_event,
    mtcp_destroy,
    mtcp_destroy_context,
    mtcp_errmsg,
    mtcp_getconf,
    mtcp_getlastpkt,
    mtcp_init,
    mtcp_register_callback,
    mtcp_setconf,
    mtcp_setlastpkt,
    mtcp_setsockopt,
    mtcp_settimer,
    mtcp_socket,
    pkt_info,
    timeval,
)

DEFAULT_RULES = Path(__file__).resolve().with_name("simple_firewall.rules")
ACCEPT, DROP = "ACCEPT", "DROP"
ANY = ipaddress.IPv4Network("0.0.0.0/32")


@dataclass
class FirewallRule:
    action: str
    src: ipaddress.IPv4Network
    dst: ipaddress.IPv4Network
    sport: int = 0                 # 0 = any
    dport: int = 0
    count: int = 0                 # flows matched

    def matches(self, sip: str, dip: str, sp: int, dp: int) -> bool:
        return (_match_addr(sip, self.src) and _match_addr(dip, self.dst)
                and self.sport in (0, sp) and self.dport in (0, dp))


g_rules: list[FirewallRule] = []
g_blocked: list[str] = []
g_interval = timeval(1, 0)


class RuleError(Exception):
    pass


def _match_addr(ip: str, net: ipaddress.IPv4Network) -> bool:
    if net == ANY:                                    # 0.0.0.0 means '*'
        return True
    try:
        return ipaddress.IPv4Address(ip) in net
    except ValueError:                                # an IPv6 flow: IPv4 rules never match
        return False


def _parse_addr(word: str, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(word, strict=False)
    except ValueError as exc:
        raise RuleError(f"{where}: invalid address {word!r}") from exc


def parse_rules(path: Path) -> list[FirewallRule]:
    """The rule file, as mOS's ParseConfigFile reads it."""
    rules = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path}:{lineno}"
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] not in (ACCEPT, DROP):
            raise RuleError(f"{where}: unknown rule action {words[0]!r}")
        if len(words) < 3:
            raise RuleError(f"{where}: invalid format {raw.strip()!r}")
        rule = FirewallRule(words[0], _parse_addr(words[1], where), _parse_addr(words[2], where))
        for word in words[3:]:
            key, _, num = word.partition(":")
            if key not in ("sport", "dport") or not num.isdigit() or int(num) > 65535:
                raise RuleError(f"{where}: invalid port rule {word!r}")
            setattr(rule, key, int(num))
        rules.append(rule)
    return rules


def fwr_lookup(sip: str, dip: str, sp: int, dp: int) -> tuple[str, int]:
    """(action, 1-based rule number; 0 = no rule, accepted by default)."""
    for i, rule in enumerate(g_rules, 1):
        if rule.matches(sip, dip, sp, dp):
            rule.count += 1
            return rule.action, i
    return ACCEPT, 0


def dump_fw_rule_table(mctx: mctx_t, sock: int, side: int, events: int, arg: object,
                       rearm: bool = True) -> None:
    print("-" * 71)
    print("Firewall rule table")
    print("idx   flows   target   client             server             port")
    for i, r in enumerate(g_rules, 1):
        line = f"{i:<6}{r.count:<8}{r.action:<9}{_net(r.src):<19}{_net(r.dst):<19}"
        if r.sport:
            line += f"sport:{r.sport:<6}"
        if r.dport:
            line += f"dport:{r.dport:<6}"
        print(line.rstrip())
    print("-" * 71)
    sys.stdout.flush()
    if rearm and mtcp_settimer(mctx, sock, g_interval, dump_fw_rule_table):
        sys.stderr.write(f"mtcp_settimer() error: {mtcp_errmsg()}\n")
        sys.exit(1)


def _net(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def apply_action_per_flow(mctx: mctx_t, msock: int, side: int, events: int,
                          arg: object) -> None:
    """Called at a flow's first SYN."""
    p = pkt_info()
    if mtcp_getlastpkt(mctx, msock, side, p) < 0 or p.iph is None or p.tcph is None:
        sys.stderr.write(f"Failed to get packet context: {mtcp_errmsg()}\n")
        sys.exit(1)
    action, rule = fwr_lookup(p.iph.saddr, p.iph.daddr, p.tcph.source, p.tcph.dest)
    # mOS drops the SYN here; mostool cannot (ENOSYS), so it reports the flow
    if action == DROP and mtcp_setlastpkt(mctx, msock, side, 0, None, 0, MOS_DROP) < 0:
        who = f"{p.iph.saddr}:{p.tcph.source} -> {p.iph.daddr}:{p.tcph.dest}"
        g_blocked.append(who)
        print(f"would block (rule {rule}): {who}", flush=True)
    # no need to monitor this flow any more
    if mtcp_setsockopt(mctx, msock, SOL_MONSOCKET, MOS_STOP_MON, MOS_SIDE_BOTH, 4) < 0:
        sys.stderr.write(f"Failed to stop monitoring socket {msock}: {mtcp_errmsg()}\n")
        sys.exit(1)


def catch_init_syn(mctx: mctx_t, sockid: int, side: int, events: int, arg: object) -> bool:
    p = pkt_info()
    if mtcp_getlastpkt(mctx, sockid, side, p) < 0 or p.tcph is None:
        return False
    return bool(p.tcph.syn and not p.tcph.ack)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Report the flows a firewall rule table would "
                                "have blocked (port of mOS's samples/simple_firewall).")
    p.add_argument("-r", dest="files", action="append", metavar="FILE",
                   help="capture file to replay (repeat to merge several)")
    p.add_argument("-i", dest="interface", metavar="IFACE", help="capture live on IFACE")
    p.add_argument("-c", dest="conf", metavar="MOS_CONF", help="mOS configuration file")
    p.add_argument("-f", dest="rules", type=Path, default=DEFAULT_RULES, metavar="RULES",
                   help=f"firewall rules (default {DEFAULT_RULES.name})")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds of packet time between rule-table dumps (default 1)")
    args = p.parse_args(argv)
    if sum(x is not None for x in (args.files, args.interface, args.conf)) != 1:
        p.error("give one of -r FILE, -i IFACE, -c MOS_CONF")
    if args.interval <= 0:
        p.error("--interval must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    global g_rules, g_interval
    args = parse_args(argv)
    g_interval = timeval(int(args.interval), round(args.interval % 1 * 1_000_000))
    try:
        g_rules = parse_rules(args.rules)
    except (OSError, RuleError) as exc:
        sys.stderr.write(f"simple_firewall: {exc}\n")
        return 1
    conf: object = args.conf if args.conf else (
        {"source": args.files} if args.files else {"interface": args.interface})
    if mtcp_init(conf):  # type: ignore[arg-type]
        sys.stderr.write(f"simple_firewall: failed to initialize mtcp: {mtcp_errmsg()}\n")
        return 1
    mcfg = mtcp_conf()
    mtcp_getconf(mcfg)
    # event for the initial SYN packet
    init_syn_event = mtcp_define_event(MOS_ON_PKT_IN, catch_init_syn, None)
    if init_syn_event == MOS_NULL_EVENT:
        sys.stderr.write(f"mtcp_define_event() failed: {mtcp_errmsg()}\n")
        return 1
    mtcp_setconf(mcfg)
    mctx = mtcp_create_context(0)
    if mctx is None:
        sys.stderr.write(f"Failed to create mtcp context: {mtcp_errmsg()}\n")
        return 1
    listener = mtcp_socket(mctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    if listener < 0:
        sys.stderr.write(f"Failed to create monitor listening socket: {mtcp_errmsg()}\n")
        return 1
    if mtcp_register_callback(mctx, listener, init_syn_event, MOS_HK_SND,
                              apply_action_per_flow) == -1:
        sys.stderr.write(f"Failed to register callback func: {mtcp_errmsg()}\n")
        return 1
    if mtcp_settimer(mctx, listener, g_interval, dump_fw_rule_table):
        sys.stderr.write(f"Failed to register timer callback func: {mtcp_errmsg()}\n")
        return 1
    status = 0
    if mtcp_app_join(mctx):                            # wait for the capture to end
        sys.stderr.write(f"simple_firewall: {mtcp_errmsg()}\n")
        status = 1
    mtcp_close(mctx, listener)
    mtcp_destroy_context(mctx)
    mtcp_destroy()
    dump_fw_rule_table(mctx, listener, 0, 0, None, rearm=False)
    print(f"{len(g_blocked)} flow(s) would have been blocked")
    return status


if __name__ == "__main__":
    sys.exit(main())
