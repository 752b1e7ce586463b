"""`vedette attack ...`: ATT&CK coverage of a rule set, group overlap hints, technique lookup."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from vedette.cli.cmd_intel import wide_console
from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError
from vedette.intel.attack import AttackKB, is_technique_id, sorted_technique_ids
from vedette.intel.coverage import Coverage, rank_groups, rule_coverage, techniques_from_result
from vedette.intel.navigator import navigator_layer, write_layer

COVERAGE_DESCRIPTION = """\
Which ATT&CK techniques a Sigma rule set covers, per tactic, from the rules' attack.* tags.

examples:
  vedette attack coverage                               the default rules
  vedette attack coverage --rules ./sigma/rules --techniques
  vedette attack coverage --rules ./rules --navigator coverage-layer.json
"""

GROUPS_DESCRIPTION = """\
Rank known ATT&CK groups by the overlap (Jaccard, with sub-techniques rolled up to their
parent) of the techniques they are known to use with the techniques that fired in a scan.
This is a HINT for where to look next, NOT an attribution: techniques are shared widely.

examples:
  vedette scan ./logs --format jsonl -o result.jsonl && vedette attack groups --from result.jsonl
  vedette attack groups --from layer.json --top 5
"""

SHOW_DESCRIPTION = """\
Look up techniques, tactics, groups or software by id or name.

examples:
  vedette attack show T1059.001 T1003.001
  vedette attack show credential-access        (or TA0006: the tactic's techniques)
  vedette attack show G0016
  vedette attack show "Cozy Bear"
"""


def _kb(args: argparse.Namespace) -> AttackKB:
    return AttackKB.load(args.attack_data)


def _add_kb_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attack-data",
        type=Path,
        metavar="FILE",
        help="ATT&CK STIX bundle or Vedette table to use instead of the bundled one",
    )


# -- coverage ---------------------------------------------------------------------------------


def _configure_coverage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="Sigma rule file or folder (repeatable; default: the bundled and installed rules)",
    )
    parser.add_argument("--navigator", type=Path, metavar="FILE", help="write a Navigator layer")
    parser.add_argument(
        "--no-cache", action="store_true", help="do not use the compiled-rule cache of `scan`"
    )
    parser.add_argument(
        "--techniques", action="store_true", help="also list every covered technique"
    )
    parser.add_argument("--json", action="store_true", help="print the coverage as JSON")
    _add_kb_option(parser)


def _load_rules(paths: list[Path], *, use_cache: bool) -> tuple[list[object], int]:
    from vedette.paths import cache_dir as default_cache_dir
    from vedette.pipeline.build import load_rule_set

    if not paths:
        from vedette.rulepacks.paths import default_rule_paths  # never empty: the starter pack

        paths = default_rule_paths()
    # The same compiled-rule cache as `vedette scan`: coverage after a scan loads instantly.
    cache_dir = default_cache_dir() if use_cache else None
    engine = load_rule_set(
        paths, cache_dir=cache_dir, missing="{path}: no such rule file or folder"
    )
    return list(engine.rules), len(engine.load_report.errors)


def _run_coverage(args: argparse.Namespace) -> int:
    _check_output_folder(args.navigator, "--navigator")  # before a long rule load, not after
    kb = _kb(args)
    rules, errors = _load_rules(args.rules, use_cache=not args.no_cache)
    coverage = rule_coverage(rules, kb)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({
            "attack_version": kb.version,
            "rules": coverage.rules_total,
            "rules_without_attack": coverage.rules_without_attack,
            "rule_files_not_loaded": errors,
            "tactics": [
                {"tactic": t.shortname, "name": t.name, "rules": len(t.rules),
                 "techniques_covered": len(t.parents_covered), "techniques": t.parents_total,
                 "percent": round(t.percent, 1)}
                for t in coverage.by_tactic
            ],
            "techniques": {tid: sorted(ids) for tid, ids in
                           sorted(coverage.by_technique.items())},
            "unknown_techniques": sorted(coverage.unknown_techniques),
        }, indent=2))  # fmt: skip
        _write_coverage_layer(args.navigator, coverage, kb)
        return 0
    console = wide_console()
    table = Table(
        title=f"ATT&CK coverage of {coverage.rules_total:,} rules (ATT&CK v{escape(kb.version)})"
    )
    table.add_column("Tactic")
    table.add_column("Rules", justify="right")
    table.add_column("Techniques", justify="right")
    table.add_column("Covered", justify="right")
    table.add_column("Most covered techniques")
    for tactic in coverage.by_tactic:
        ranked = sorted(tactic.techniques)  # ties in id order: the same table on every run
        top = sorted(ranked, key=lambda t: -len(coverage.by_technique.get(t, [])))[:3]
        names = ", ".join(f"{t} {kb.ref(t).name} ({len(coverage.by_technique[t])})" for t in top)
        table.add_row(  # names come from the ATT&CK file (--kb): data, never Rich markup
            escape(tactic.name),
            str(len(tactic.rules)),
            f"{len(tactic.parents_covered)}/{tactic.parents_total}",
            f"{tactic.percent:.0f}%",
            escape(names),
        )
    console.print(table)
    if args.techniques:
        detail = Table(title="Covered techniques")
        detail.add_column("Technique")
        detail.add_column("Name")
        detail.add_column("Tactics")
        detail.add_column("Rules", justify="right")
        for tid in sorted_technique_ids(list(coverage.by_technique)):
            ref = kb.ref(tid)
            detail.add_row(escape(tid), escape(ref.name), escape(", ".join(ref.tactics)),
                           str(len(coverage.by_technique[tid])))  # fmt: skip
        console.print(detail)
    console.print(
        f"{len(coverage.by_technique)} techniques covered; "
        f"{coverage.rules_without_attack} rules carry no ATT&CK tag; "
        f"{errors} rule files did not load"
    )
    if coverage.unknown_techniques:
        unknown = escape(", ".join(sorted(coverage.unknown_techniques)))  # from rule tags
        console.print(
            f"[yellow]technique ids unknown to ATT&CK v{escape(kb.version)}: {unknown}[/]"
        )
    if args.navigator is not None:
        _write_coverage_layer(args.navigator, coverage, kb)
        console.print(f"Navigator layer written to {escape(str(args.navigator))}")
    return 0


def _write_coverage_layer(path: Path | None, coverage: Coverage, kb: AttackKB) -> None:
    if path is None:
        return
    comments = {
        tid: f"{len(ids)} rule(s): " + ", ".join(ids[:20])
        for tid, ids in coverage.by_technique.items()
    }
    layer = navigator_layer(
        coverage.scores(),
        name="Vedette rule coverage",
        description=f"{coverage.rules_total} Sigma rules; score = number of rules",
        comments=comments,
        kb=kb,
    )
    try:
        write_layer(layer, path)
    except OSError as exc:
        raise ConfigError(f"--navigator: cannot write {path}: {exc.strerror or exc}") from exc


def _check_output_folder(path: Path | None, option: str) -> None:
    """A usage error when ``path``'s folder is missing (the same words as `vedette scan`)."""
    if path is not None and not path.parent.is_dir():
        raise ConfigError(f"{option}: folder {path.parent} does not exist")


# -- groups -----------------------------------------------------------------------------------


def _configure_groups(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="RESULT",
        help="scan result (JSONL detections) or an ATT&CK Navigator layer",
    )
    parser.add_argument(
        "--top", type=_positive_int, default=10, help="how many groups (default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_kb_option(parser)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--top -1`` listed every group)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _run_groups(args: argparse.Namespace) -> int:
    kb = _kb(args)
    observed = techniques_from_result(args.source)
    matches = rank_groups(observed, kb, top=args.top)
    if args.json:
        print(json.dumps({
            "note": "hint, not attribution",
            "observed_techniques": sorted_technique_ids(list(observed)),
            "groups": [
                {"id": m.group.id, "name": m.group.name, "aliases": list(m.group.aliases),
                 "score": round(m.score, 4), "shared": list(m.shared),
                 "known_techniques": m.known}
                for m in matches
            ],
        }, indent=2))  # fmt: skip
        return 0
    console = wide_console()
    console.print(
        "[bold yellow]HINT, NOT ATTRIBUTION:[/] groups whose known techniques overlap what "
        "fired. Techniques are shared by many groups and tools; treat this as a lead to check, "
        "never as a conclusion."
    )
    if not observed:
        console.print(f"no ATT&CK techniques found in {escape(str(args.source))}")
        return 0
    console.print(f"{len(observed)} techniques observed: "
                  + escape(", ".join(sorted_technique_ids(list(observed)))))  # fmt: skip
    table = Table(title=f"Known groups by technique overlap (ATT&CK v{escape(kb.version)})")
    table.add_column("#", justify="right")
    table.add_column("Group")
    table.add_column("Also known as")
    table.add_column("Overlap", justify="right")
    table.add_column("Shared", justify="right")
    table.add_column("Shared techniques")
    for rank, match in enumerate(matches, 1):
        table.add_row(
            str(rank),
            escape(f"{match.group.id} {match.group.name}"),
            escape(", ".join(match.group.aliases[:3])),
            f"{match.score:.3f}",
            f"{len(match.shared)}/{match.known}",
            escape(", ".join(match.shared[:8])) + (" ..." if len(match.shared) > 8 else ""),
        )
    console.print(table)
    return 0


# -- show -------------------------------------------------------------------------------------


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ids", nargs="+", metavar="ID", help="technique, tactic, group or software (id or name)"
    )
    _add_kb_option(parser)


def _run_show(args: argparse.Namespace) -> int:
    kb = _kb(args)
    console = wide_console()
    missing = 0
    for key in args.ids:
        text = key.strip()
        shown = escape(text)  # what the user typed, and every KB name below, is not markup
        if is_technique_id(text):
            technique = kb.technique(text, follow_revoked=False)
            if technique is None:
                console.print(f"{shown}: unknown technique")
                missing += 1
                continue
            state = ""
            if technique.revoked:
                state = f" [red](revoked, now {escape(str(technique.revoked_by))})[/]"
            elif technique.deprecated:
                state = " [yellow](deprecated)[/]"
            console.print(f"[bold]{escape(technique.id)}[/] {escape(technique.name)}{state}")
            console.print(f"  tactics:   {escape(', '.join(technique.tactics)) or '-'}")
            console.print(f"  platforms: {escape(', '.join(technique.platforms)) or '-'}")
            if technique.description:
                console.print(f"  {escape(technique.description)}", highlight=False)
            users = sorted(g.name for g in kb.groups.values() if technique.id in g.techniques)
            console.print(f"  used by {len(users)} groups: {escape(', '.join(users[:15]))}"
                          + (" ..." if len(users) > 15 else ""))  # fmt: skip
            console.print(f"  https://attack.mitre.org/techniques/{technique.id.replace('.', '/')}")
            continue
        tactic = kb.tactic(text)
        if tactic is not None:
            techniques = sorted(
                (t for t in kb.current_techniques() if tactic.shortname in t.tactics),
                key=lambda t: t.id,
            )
            parents = [t for t in techniques if t.parent_id is None]
            console.print(
                f"[bold]{escape(tactic.id)}[/] {escape(f'{tactic.name} ({tactic.shortname})')}"
            )
            console.print(
                f"  {len(parents)} techniques, {len(techniques) - len(parents)} sub-techniques"
            )
            for technique in parents:
                console.print(escape(f"  {technique.id} {technique.name}"), highlight=False)
            console.print(f"  https://attack.mitre.org/tactics/{tactic.id}")
            continue
        software = kb.software.get(text.upper())
        if software is not None:
            console.print(
                f"[bold]{escape(software.id)}[/] {escape(f'{software.name} ({software.type})')}"
            )
            ids = ", ".join(sorted_technique_ids(list(software.techniques)))
            console.print(f"  techniques: {escape(ids)}")
            continue
        group = kb.group_by_name(text)
        if group is None:
            console.print(f"{shown}: no technique, tactic, group or software by that id or name")
            missing += 1
            continue
        console.print(f"[bold]{escape(group.id)}[/] {escape(group.name)}")
        if group.aliases:
            console.print(f"  also known as: {escape(', '.join(group.aliases))}")
        ids = ", ".join(sorted_technique_ids(list(group.techniques)))
        console.print(f"  {len(group.techniques)} techniques: {escape(ids)}")
        names = [kb.software[s].name for s in group.software if s in kb.software]
        console.print(f"  software: {escape(', '.join(names)) or '-'}")
    return 1 if missing == len(args.ids) else 0


def register(registry: CommandRegistry) -> None:
    """Register `vedette attack coverage|groups|show`."""
    registry.group(("attack",), "MITRE ATT&CK: rule coverage, group hints, lookups")
    registry.add(("attack", "coverage"), "which ATT&CK techniques a rule set covers",
                 _configure_coverage, _run_coverage, COVERAGE_DESCRIPTION)  # fmt: skip
    registry.add(("attack", "groups"), "known groups overlapping what fired (hint only)",
                 _configure_groups, _run_groups, GROUPS_DESCRIPTION)  # fmt: skip
    registry.add(("attack", "show"), "look up a technique, tactic, group or software",
                 _configure_show, _run_show, SHOW_DESCRIPTION)  # fmt: skip
