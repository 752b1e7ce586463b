"""Words the console shows for values the API keeps as codes (levels, statuses, reasons,
ATT&CK tactics), marked for the catalogues with ``N_`` and translated when rendered."""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


LABELS: dict[str, str] = {
    # levels
    "informational": N_("informational"),
    "low": N_("low"),
    "medium": N_("medium"),
    "high": N_("high"),
    "critical": N_("critical"),
    # alert, incident, task and warning statuses
    "new": N_("new"),
    "acknowledged": N_("acknowledged"),
    "in_progress": N_("in progress"),
    "closed": N_("closed"),
    "open": N_("open"),
    "done": N_("done"),
    # retro-hunt statuses (besides "done")
    "queued": N_("queued"),
    "running": N_("running"),
    "cancelled": N_("cancelled"),
    "failed": N_("failed"),
    # close reasons
    "true_positive": N_("true positive"),
    "false_positive": N_("false positive"),
    "benign": N_("benign"),
    # roles
    "admin": N_("admin"),
    "analyst": N_("analyst"),
    "viewer": N_("viewer"),
    "ingest": N_("ingest"),
    # alert kinds
    "sigma": N_("Sigma rule"),
    "correlation": N_("correlation"),
    "intel": N_("indicator"),
    # the coordinator's early-warning search, a job of the scale-out work queue
    "warning": N_("early-warning search"),
    # incident access
    "owner": N_("owner"),
    "participant": N_("participant"),
    # ATT&CK tactics (shortnames)
    "reconnaissance": N_("Reconnaissance"),
    "resource-development": N_("Resource Development"),
    "initial-access": N_("Initial Access"),
    "execution": N_("Execution"),
    "persistence": N_("Persistence"),
    "privilege-escalation": N_("Privilege Escalation"),
    "defense-evasion": N_("Defense Evasion"),
    "credential-access": N_("Credential Access"),
    "discovery": N_("Discovery"),
    "lateral-movement": N_("Lateral Movement"),
    "collection": N_("Collection"),
    "command-and-control": N_("Command and Control"),
    "exfiltration": N_("Exfiltration"),
    "impact": N_("Impact"),
}


def label(code: str | None) -> str:
    """The English message id for ``code`` (the code itself when it has none)."""
    if code is None:
        return ""
    return LABELS.get(code, code)
