"""The README table of a results file (``scripts/bench --table``)."""

from __future__ import annotations

from typing import Any


def _ms(summary: dict[str, float]) -> str:
    return f"{summary['median_ms']:.3f} ms (p95 {summary['p95_ms']:.3f})"


def _requests(per_path: dict[str, float]) -> str:
    return ", ".join(f"`{path}` {count:g}" for path, count in per_path.items() if count)


def _iammeter_version(machine: dict[str, Any]) -> str:
    """The core ``iammeter`` library of a run, when it had one."""
    version = machine.get("iammeter")
    return f", iammeter {version}" if version and version != "not installed" else ""


def table(results: dict[str, Any]) -> str:
    """Markdown: the machine, then one row per measurement, targets beside them."""
    machine = results["machine"]
    lines = [
        f"`{results['command']}` on {results['date'][:10]}, revision {results.get('revision')}:"
        f" {machine['nproc']} x {machine['cpu']}, Python {machine['python']}, Home Assistant"
        f" {machine['homeassistant']}, python-homewizard-energy"
        f" {machine['python-homewizard-energy']}{_iammeter_version(machine)}; load average {machine.get('load_average_at_start')}"
        f" at the start, {machine.get('load_average_at_end')} at the end.",
        *(
            f"The {part} part was run again alone: `{run['command']}` on {run['date'][:10]},"
            f" revision {run.get('revision')}{_iammeter_version(run['machine'])}; load average"
            f" {run['machine'].get('load_average_at_start')} at the start."
            for part, run in results.get("runs", {}).items()
        ),
        "",
        "| Measurement | Meter Hub | Core `homewizard` | Target |",
        "| --- | --- | --- | --- |",
    ]
    local = results.get("local", {})
    cpu = local.get("cpu", {})
    if "ratio_median" in cpu:
        requests = cpu["device_requests_per_poll"]
        lines += [
            f"| CPU per poll, median (p95), {cpu['polls']} polls each | {_ms(cpu['meter_hub'])}"
            f" | {_ms(cpu['homewizard'])} | |",
            f"| Ratio Meter Hub / core, median (p95) | {cpu['ratio_median']}"
            f" ({cpu['ratio_p95']}) | 1 | ≤ 0.7 |",
            f"| Requests to the device per poll | {_requests(requests['meter_hub'])}"
            f" | {_requests(requests['homewizard'])} | |",
            f"| Enabled entities; state changes per poll | {cpu['entities']['meter_hub']['enabled']};"
            f" {cpu['state_changes_per_poll']['meter_hub']}"
            f" | {cpu['entities']['homewizard']['enabled']};"
            f" {cpu['state_changes_per_poll']['homewizard']} | |",
        ]
    shared = local.get("cpu_shared_device", {})
    if "ratio_median" in shared:
        lines += [
            f"| Both on one device: CPU per poll, median (p95) | {_ms(shared['meter_hub'])}"
            f" | {_ms(shared['homewizard'])} | |",
            f"| Both on one device: ratio, median (p95); requests per poll, both"
            f" | {shared['ratio_median']} ({shared['ratio_p95']})"
            f" | {_requests(shared['device_requests_per_poll']['both'])} | |",
        ]
    mem = local.get("memory", {})
    if "meter_hub" in mem:
        polls = mem["polls"]
        mh, core = mem["meter_hub"], mem["homewizard"]
        lines += [
            f"| Memory per config entry | {mh['per_config_entry_kib']} KiB"
            f" | {core['per_config_entry_kib']} KiB | |",
            f"| Retained memory, after 10 → {polls} polls | {mh['growth_first_kib']:+} KiB"
            f" | {core['growth_first_kib']:+} KiB | no growth |",
            f"| Retained memory, after {polls} → {2 * polls} polls | {mh['growth_second_kib']:+} KiB"
            f" | {core['growth_second_kib']:+} KiB | no growth |",
            f"| Retained memory later, per 1000 polls (from {2 * polls} polls on)"
            f" | {mh['growth_later_kib_per_1000_polls']:+} KiB"
            f" | {core['growth_later_kib_per_1000_polls']:+} KiB | no growth |",
        ]
    setup = local.get("setup", {})
    if "meter_hub" in setup:
        lines.append(
            f"| Setup of a local entry, median of {setup['runs']}"
            f" | {setup['meter_hub']['median_s'] * 1000:.1f} ms"
            f" | {setup['homewizard']['median_s'] * 1000:.1f} ms | < 500 ms |"
        )
    lines += _push_rows(results.get("push", {}))
    cloud = results.get("cloud", {})
    if cloud:
        lines += [
            "",
            "| IAMMETER account, a simulated week | Data calls per day"
            " (`metersdata`) | Logins (per day, steady) | Other calls | Over a limit |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, r in cloud.items():
            if "error" in r:
                lines.append(f"| {name.replace('_', ' ')} | crashed | | | |")
                continue
            other = {
                endpoint: count
                for endpoint, count in r["calls_per_endpoint"].items()
                if endpoint not in ("login", "metersdata")
            }
            low, high = r["data_calls_per_day_min"], r["data_calls_per_day_max"]
            runs = f"{r['restarts']} restarts" if r["restarts"] else "no restart"
            lines.append(
                f"| {r['meters']} meter{'s' if r['meters'] > 1 else ''}, {runs}"
                f" | {low if low == high else f'{low}-{high}'}"
                f" | {r['logins_total']} ({r['logins_per_day_steady']})"
                f" | {', '.join(f'{k} {v}' for k, v in other.items()) or 'none'}"
                f" | {r['over_limit_answered_nothing'] + r['over_limit_recounted']} |"
            )
        lines.append("| Target | 288 whatever the meter count | ≤ 1 per day | | 0 |")
    lines += _iammeter_rows(results.get("iammeter", {}))
    return "\n".join(lines)


def _iammeter_rows(part: dict[str, Any]) -> list[str]:
    """The IAMMETER local table: Meter Hub beside core's ``iammeter`` on the same meter."""
    cpu, mem, latency = part.get("cpu", {}), part.get("memory", {}), part.get("latency", {})
    if not any(("ratio_median" in cpu, "meter_hub" in mem, "median_s" in latency)):
        return []
    lines = [
        "",
        "| IAMMETER meter on the network (WEM3080T, net metering) | Meter Hub"
        " | Core `iammeter` | Target |",
        "| --- | --- | --- | --- |",
    ]
    if "ratio_median" in cpu:
        lines += [
            f"| CPU per poll (whole process), median (p95), {cpu['polls']} polls each"
            f" | {_ms(cpu['meter_hub'])} | {_ms(cpu['iammeter'])} | |",
            f"| Ratio Meter Hub / core, median (p95) | {cpu['ratio_median']}"
            f" ({cpu['ratio_p95']}) | 1 | ≤ 1 |",
            "| Entities, enabled of registered | "
            + " | ".join(
                f"{cpu['entities'][name]['enabled']} of {cpu['entities'][name]['registered']}"
                for name in ("meter_hub", "iammeter")
            )
            + " | |",
        ]
    if "meter_hub" in mem:
        lines.append(
            f"| Memory per entry ({mem['entries']} entries) | {mem['meter_hub']['per_entry_kib']}"
            f" KiB | {mem['iammeter']['per_entry_kib']} KiB (per YAML platform) | |"
        )
    if "median_s" in latency:
        lines.append(
            f"| A change on the meter to the new state, {latency['changes']} changes"
            f" | median {latency['median_s']} s, max {latency['max_s']} s"
            f" (poll every {latency['interval_s']:g} s)"
            f" | up to {latency['core_default_interval_s']} s (its fixed interval) | ≤ 1 s + a poll |"
        )
    return lines


def _delay(summary: dict[str, Any]) -> str:
    if "median_ms" not in summary:
        return "never shown"
    return f"{summary['median_ms']:g} ms (p99 {summary['p99_ms']:g})"


def _push_rows(push: dict[str, Any]) -> list[str]:
    """HomeWizard v2: Meter Hub pushed (WebSocket) against core polling every 5 s."""
    rows: list[str] = []
    latency = push.get("latency", {})
    if "meter_hub" in latency:
        core = latency["homewizard"]
        rows.append(
            f"| v2 push: latency device → state, median (p99), {latency['changes']} changes about"
            f" {latency['mean_spacing_s']:g} s apart | {_delay(latency['meter_hub'])}"
            f" | {_delay(core)}, polls every {latency['core_poll_s']} s;"
            f" {core['never_shown']} of {latency['changes']} values never shown"
            " | < 100 ms (p99 < 500 ms) |"
        )
    cpu = push.get("cpu", {})
    if "ratio_median" in cpu:
        hourly = cpu["cpu_per_simulated_hour_ms"]
        rows += [
            f"| v2: CPU per pushed update / per poll, median (p95), {cpu['simulated_s']} simulated s"
            f" | {_ms(cpu['meter_hub'])} | {_ms(cpu['homewizard'])} | lower than core's |",
            f"| v2: CPU per simulated hour (updates; state changes per update)"
            f" | {hourly['meter_hub']:g} ms ({cpu['updates']['meter_hub']};"
            f" {cpu['state_changes_per_update']['meter_hub']})"
            f" | {hourly['homewizard']:g} ms ({cpu['updates']['homewizard']};"
            f" {cpu['state_changes_per_update']['homewizard']}) | |",
        ]
    memory = {name: push.get(f"memory_{name}", {}) for name in ("meter_hub", "homewizard")}
    if all("growth_later_kib_per_1000_updates" in m for m in memory.values()):
        mh, core = memory["meter_hub"], memory["homewizard"]
        rows.append(
            "| v2: retained memory, last third of the hour, per 1000 updates (pushes / polls)"
            f" | {mh['growth_later_kib_per_1000_updates']:+} KiB"
            f" | {core['growth_later_kib_per_1000_updates']:+} KiB | no growth |"
        )
    reconnect = push.get("reconnect", {})
    if "meter_hub" in reconnect:
        rows.append(
            f"| v2: device back after {reconnect['away_s']:g} s away → first pushed value,"
            f" median (max) of {reconnect['times']}"
            f" | {reconnect['meter_hub_first_pushed'].get('median_ms')} ms"
            f" ({reconnect['meter_hub_first_pushed'].get('max_ms')})"
            f" | next poll: {reconnect['homewizard'].get('median_ms')} ms"
            f" ({reconnect['homewizard'].get('max_ms')}) | |"
        )
    return rows
