"""aliases: one group across rules whose field names differ (the specification's example)."""

from __future__ import annotations

from corr_support import Factory, run

RULES = """
title: Internal error
name: internal_error
logsource: {category: webserver}
detection: {selection: {http.response.status_code: 500}, condition: selection}
---
title: New network connection
name: new_network_connection
logsource: {category: network_connection}
detection:
    selection: {event.category: network, event.type: connection, event.outcome: success}
    condition: selection
---
title: Error followed by a connection back
name: error_then_connection
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
"""


def error(make: Factory, at: float, server: str, client: str):  # type: ignore[no-untyped-def]
    return make.det("internal_error", at, **{"destination.ip": server, "source.ip": client})


def connection(make: Factory, at: float, src: str, dst: str):  # type: ignore[no-untyped-def]
    return make.det("new_network_connection", at, **{"source.ip": src, "destination.ip": dst})


def test_aliases_join_fields_with_different_names(make: Factory) -> None:
    detections = [
        error(make, 0, "10.0.0.5", "203.0.113.7"),
        connection(make, 4, "10.0.0.5", "203.0.113.7"),
    ]
    [alert] = run(make.correlator(RULES), detections)
    assert alert.extra["group_by"] == {"internal_ip": "10.0.0.5", "remote_ip": "203.0.113.7"}


def test_same_field_names_without_the_alias_mapping_do_not_join(make: Factory) -> None:
    # The connection goes the other way: its source is the client, so the groups differ.
    detections = [
        error(make, 0, "10.0.0.5", "203.0.113.7"),
        connection(make, 4, "203.0.113.7", "10.0.0.5"),
    ]
    assert run(make.correlator(RULES), detections) == []


def test_alias_of_a_rule_not_in_rules_is_a_load_error(make: Factory) -> None:
    from vedette.correlate import Correlator, load_yaml_rules

    rules = load_yaml_rules(RULES.replace("new_network_connection: source.ip", "ghost: source.ip"))
    correlator = Correlator(rules.correlations, rules.base_rules)
    [error_entry] = correlator.load_errors
    assert "ghost" in error_entry.reason


def test_condition_field_can_be_an_alias(make: Factory) -> None:
    from vedette.correlate import Correlator, load_yaml_rules

    text = """
title: Kerberos failure
name: kerberos_failure
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4771}, condition: selection}
---
title: NTLM failure
name: ntlm_failure
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4776}, condition: selection}
---
title: Many accounts failing from one source, any protocol
name: spray_any_protocol
correlation:
    type: value_count
    rules: [kerberos_failure, ntlm_failure]
    group-by: [source]
    timespan: 5m
    aliases:
        source: {kerberos_failure: IpAddress, ntlm_failure: Workstation}
        account: {kerberos_failure: TargetUserName, ntlm_failure: TargetUserName}
    condition: {field: account, gte: 3}
"""
    rules = load_yaml_rules(text)
    correlator = Correlator(rules.correlations, rules.base_rules)
    detections = [
        make.det("kerberos_failure", 0, IpAddress="10.1.1.1", TargetUserName="ann"),
        make.det("ntlm_failure", 1, Workstation="10.1.1.1", TargetUserName="bob"),
        make.det("kerberos_failure", 2, IpAddress="10.1.1.1", TargetUserName="cid"),
    ]
    [alert] = run(correlator, detections)
    assert alert.extra["group_by"] == {"source": "10.1.1.1"}
    assert alert.extra["value"] == 3


def test_aliases_by_rule_name_while_rules_are_listed_by_id(make: Factory) -> None:
    from vedette.correlate import Correlator, load_yaml_rules

    text = """
title: Internal error
id: 11111111-2222-4333-8444-555555555555
name: internal_error
logsource: {category: webserver}
detection: {selection: {status: 500}, condition: selection}
---
title: Connection
id: 66666666-7777-4888-8999-000000000000
name: connection
logsource: {category: network_connection}
detection: {selection: {outcome: success}, condition: selection}
---
title: Error then connection
name: error_then_connection
correlation:
    type: temporal
    rules:
        - 11111111-2222-4333-8444-555555555555
        - 66666666-7777-4888-8999-000000000000
    group-by: [internal_ip]
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            connection: source.ip
"""
    rules = load_yaml_rules(text)
    correlator = Correlator(rules.correlations, rules.base_rules)
    assert correlator.load_errors == []
    detections = [
        make.det("11111111-2222-4333-8444-555555555555", 0, **{"destination.ip": "10.0.0.5"}),
        make.det("66666666-7777-4888-8999-000000000000", 3, **{"source.ip": "10.0.0.5"}),
    ]
    [alert] = run(correlator, detections)
    assert alert.extra["group_by"] == {"internal_ip": "10.0.0.5"}
