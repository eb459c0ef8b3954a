"""How the supervisor follows the network: netlink's changes in, the MRIB
recomputed, and only the difference applied to the workers.

Link and address changes arrive from mcr.netlink on the supervisor's loop.
An output whose address, MTU or MAC changed gets its header templates
rewritten in place (UpdateLink); a change in which interfaces exist under
which names recomputes the routes (mcr.mrib) and syncs the workers, with
memberships and counters following the routes. These functions work on
the Supervisor's state and are its part, kept in a file of their own.
"""

from __future__ import annotations

import logging

from .. import _engine, mrib
from ..netlink import Change
from .workers import WorkerError, add_counters

log = logging.getLogger("mcr.supervisor")


async def follow(sup) -> None:
    """Apply each batch of link and address changes as it arrives."""
    async for batch in sup.network.changes():
        for change in batch:
            publish(sup.events, change)
        async with sup._changing:
            await update_links(sup, batch)
            await apply_routes(sup)


async def follow_routes(sup) -> None:
    """`mcr events` reports IPv4 route changes; PIM's RPF answers are looked up again."""
    async for batch in sup.network.route_changes():
        for route in batch:
            if route.kind == "resync":
                sup.events.publish("route", change="resync")
            else:
                sup.events.publish("route", change=route.kind, destination=route.destination, table=route.table,
                                   type=route.type, oif=route.oif, gateway=route.gateway)
        await sup._route_changes_to_rpf()


def publish(events, change: Change) -> None:
    """`mcr events`: a "link" event for the link itself (what changed), an
    "address" event per IPv4 address that came or went."""
    iface = change.after or change.before
    link_fields = change.what - {"addresses"} if change.kind == "changed" else change.what
    if link_fields:
        events.publish("link", change=change.kind, name=iface.name, index=iface.index, what=sorted(link_fields),
                       up=iface.up, carrier=iface.carrier, mtu=iface.mtu, mac=iface.mac)
    before = set(change.before.addresses) if change.before else set()
    after = set(change.after.addresses) if change.after else set()
    for address in sorted(after - before):
        events.publish("address", change="added", interface=iface.name, index=iface.index, address=address)
    for address in sorted(before - after):
        events.publish("address", change="removed", interface=iface.name, index=iface.index, address=address)


async def update_links(sup, batch: list[Change]) -> None:
    """An output interface's address, MTU or MAC changed: every worker
    rewrites its header templates in place (no rule is rebuilt)."""
    for change in batch:
        if change.kind != "changed" or not change.what & {"addresses", "mtu", "mac"}:
            continue
        iface = change.after
        if not iface.ethernet or not iface.addresses or not iface.mac:
            continue  # no packet path there: the UDP socket follows by itself
        source = iface.addresses[0].split("/")[0]
        mac = bytes.fromhex(iface.mac.replace(":", ""))
        for worker in sup._running():
            if ("out", iface.index) not in worker.interfaces:
                continue
            try:
                await worker.call(_engine.encode_update_link, iface.index, source, iface.mtu, mac)
                log.info("worker %d: %s now %s, MTU %d, MAC %s", worker.id, iface.name, source, iface.mtu,
                         iface.mac)
            except WorkerError as error:  # e.g. it had no address, so no packet socket, when opened
                log.warning("worker %d: cannot update %s: %s", worker.id, iface.name, error)


async def apply_routes(sup) -> None:
    """Recompute the routes (mcr.mrib) for the interfaces that exist now and
    what listeners want, and apply what changed: workers get sockets for new
    indexes and the new rule set (the engine leaves unchanged rules and their
    traffic alone), memberships follow the routes that became active,
    pruned or waiting, and sockets of interfaces no route uses (deleted ones
    included) are closed. Static joins follow their interfaces too."""
    sup.sync_igmp()  # queriers and PIM follow their interfaces and addresses
    sup.sync_pim()
    table = sup._interface_table()
    new = sup._all_routes()
    changed = sorted(i for i in new.keys() | sup.routes.keys() if new.get(i) != sup.routes.get(i))
    if not changed and not sup.joins.out_of_step(table):
        return
    old = {i: sup.routes[i] for i in changed if i in sup.routes}
    await carry_counters(sup, [i for i, route in old.items() if route.state == mrib.ACTIVE])
    # Membership sockets bound to an index that is gone (deleted, renamed
    # away, re-created) go first, once per interface, then the leaves.
    stale = sup.joins.stale(table) | {
        route.rule.input_interface for route in old.values()
        if route.state == mrib.ACTIVE and table.get(route.rule.input_interface) != route.input_ifindex}
    for name in stale:
        sup._holds.membership.forget(name)
    for route in old.values():
        sup._leave(route)
    sup.routes = new
    for engine_id in changed:
        if engine_id in new:
            sup._join(new[engine_id])
    for rule_id in sorted({(new.get(i) or old[i]).rule_id for i in changed} & set(sup.rules)):
        route = new[rule_id]
        if old.get(rule_id) is None or old[rule_id].state != route.state:
            log.info("rule %d is %s%s", rule_id, route.state,
                     f" (waiting for {', '.join(route.waiting_for)})" if route.waiting_for else "")
        sup.events.publish("rule", change="state", id=rule_id, **sup.rule_state(rule_id))
    sup._sync_joins()
    if sup._any_active():
        await sup._start_workers()  # they may have stopped for want of rules
    for worker in sup._running():
        await sup._sync_worker(worker)


async def carry_counters(sup, rule_ids: list[int]) -> None:
    """The engine is about to drop these rules (or rebuild them for a new
    interface index, from zero): keep what they counted so far in each
    worker's base, so the totals users see carry on."""
    if not rule_ids:
        return
    for worker in sup._running():
        try:
            await sup._poll(worker)
        except WorkerError as error:
            log.warning("counters of worker %d before a change: %s", worker.id, error)
            continue
        rules = worker.last.get("rules", {})
        carried = {i: rules.pop(i) for i in rule_ids if i in rules}
        worker.base = add_counters(worker.base, {"rules": carried})


def describe_interfaces(sup) -> list[dict]:
    """Every interface netlink knows, with the rules that name it."""
    users: dict[str, list[int]] = {}  # interfaces a rule needs (it waits for them)
    members: dict[str, list[int]] = {}  # members interfaces (a rule does not wait for them)
    for rule_id, rule in sup.list_rules():
        for name in mrib.interfaces_of(rule):
            users.setdefault(name, []).append(rule_id)
        for name in rule.members:
            members.setdefault(name, []).append(rule_id)
    listed = [{"name": i.name, "index": i.index, "up": i.up, "carrier": i.carrier, "mtu": i.mtu, "mac": i.mac,
               "addresses": list(i.addresses), "rules": sorted(set(users.pop(i.name, []) + members.get(i.name, [])))}
              for i in sorted(sup.network.interfaces().values(), key=lambda i: i.index)]
    # Names rules wait for: not there, but worth seeing.
    return listed + [{"name": name, "index": None, "rules": ids} for name, ids in sorted(users.items())]
