"""Linting template drafts: each check finds its problem, with the file and line to fix.

Drafts are the shipped library set (``{path: source}``) with one file edited, linted against
the shipped catalogs, config/routing.yaml and config/samples, as the console lints them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from catalogs import PO_TEXTS, SOURCES, TEMPLATES

from notifier.lint import MAIL_SUBJECT_CHARS, Finding, lint, template_audiences
from notifier.preview import load_samples
from notifier.routing import Clearance, RoutingConfig
from notifier.settings import TemplateSettings
from notifier.templating import SHARED, unit_of

ROOT = Path(__file__).resolve().parents[1]
ROUTING = RoutingConfig.load(ROOT / "config" / "routing.yaml")
SAMPLES = load_samples(ROOT / "config" / "samples")
SETTINGS = TemplateSettings(directory=TEMPLATES)
UNITS = sorted({unit_of(path) for path in SOURCES})


def run(
    template: str,
    path: str | None = None,
    edit: Callable[[str], str] | None = None,
    *,
    routing: RoutingConfig | None = ROUTING,
    settings: TemplateSettings = SETTINGS,
) -> list[Finding]:
    sources = dict(SOURCES)
    if path is not None and edit is not None:
        sources[path] = edit(sources.get(path, ""))
    return lint(
        sources,
        template,
        settings=settings,
        po_texts=PO_TEXTS,
        routing=routing,
        samples=SAMPLES,
    )


def of(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def replace_line(number: int, text: str) -> Callable[[str], str]:
    def edit(source: str) -> str:
        lines = source.splitlines()
        lines[number - 1] = text
        return "\n".join(lines) + "\n"

    return edit


def append(text: str) -> Callable[[str], str]:
    return lambda source: source + text


@pytest.mark.parametrize("unit", UNITS)
def test_shipped_templates_have_no_errors(unit: str) -> None:
    findings = run(unit)
    errors = [f for f in findings if f.level == "error"]
    assert not errors, "\n".join(f.message for f in errors)
    # Nothing is left untranslated in the shipped catalogs either.
    assert not of(findings, "untranslated")


def test_the_shipped_set_is_what_these_tests_expect() -> None:
    assert SHARED in UNITS and "public-advisory" in UNITS
    assert {"de", "es"} <= set(PO_TEXTS)


def test_a_syntax_error_is_found_with_its_line() -> None:
    findings = run("alert", "alert/email.text.j2", replace_line(12, "{% if status == %}"))
    syntax = of(findings, "syntax")
    assert [(f.level, f.path, f.line) for f in syntax] == [("error", "alert/email.text.j2", 12)]
    assert "alert/email.text.j2 line 12" in syntax[0].message
    # The file is not rendered: its syntax error is not repeated for every combination.
    assert not of(findings, "render") and not of(findings, "undefined")


def test_a_syntax_error_in_the_shared_macros_is_found_when_linting_them() -> None:
    findings = run(SHARED, "labels.j2", append("{% macro broken( %}\n"))
    syntax = of(findings, "syntax")
    line = SOURCES["labels.j2"].count("\n") + 1
    assert [(f.path, f.line) for f in syntax] == [("labels.j2", line)]


def test_an_unknown_filter_inside_a_branch_is_a_syntax_error() -> None:
    edit = append('{% if status == "resolved" %}{{ status|shout }}{% endif %}\n')
    findings = run("alert", "alert/email.text.j2", edit)
    line = SOURCES["alert/email.text.j2"].count("\n") + 1
    assert [(f.path, f.line) for f in of(findings, "syntax")] == [("alert/email.text.j2", line)]
    assert "shout" in of(findings, "syntax")[0].message


def test_an_undefined_variable_is_found_with_its_line() -> None:
    line = SOURCES["alert/email.text.j2"].split("\n").index("{{ alert.summary }}") + 1
    edit = replace_line(line, "{{ alert.summary }} ({{ ticket_url }})")
    findings = run("alert", "alert/email.text.j2", edit)
    undefined = of(findings, "undefined")
    assert [(f.level, f.path, f.line) for f in undefined] == [
        ("error", "alert/email.text.j2", line)
    ]
    assert "'ticket_url'" in undefined[0].message


def test_names_set_in_one_branch_or_looped_over_are_not_undefined() -> None:
    edit = append(
        '{% if status == "resolved" %}{% set closing = "bye" %}{{ closing }}{% endif %}\n'
        "{% for key, value in alert.labels|dictsort %}{{ key }}{{ loop.index }}{% endfor %}\n"
    )
    assert not of(run("alert", "alert/email.text.j2", edit), "undefined")


def test_a_missing_field_is_found_by_rendering_with_its_line() -> None:
    # Statically fine (alert is in the contract); only rendering shows the field is missing.
    edit = append('{% if status == "acknowledged" %}{{ details.by.name }}{% endif %}\n')
    findings = run("alert", "alert/email.subject.j2", edit)
    undefined = of(findings, "undefined")
    line = SOURCES["alert/email.subject.j2"].count("\n") + 1
    assert [(f.path, f.line) for f in undefined] == [("alert/email.subject.j2", line)]
    assert "has no attribute 'name'" in undefined[0].message
    assert "acknowledged" in undefined[0].message  # the combination that shows it


def test_other_render_errors_are_render_findings() -> None:
    findings = run("alert", "alert/email.text.j2", append("{{ alert.ends_at }}\n"))
    render = of(findings, "render")
    line = SOURCES["alert/email.text.j2"].count("\n") + 1
    assert [(f.path, f.line) for f in render] == [("alert/email.text.j2", line)]
    assert "printed None" in render[0].message


def test_a_new_message_is_untranslated_in_german_and_spanish() -> None:
    edit = append('{{ _("Please keep your validator keys offline.") }}\n')
    findings = run("alert", "alert/email.text.j2", edit)
    untranslated = of(findings, "untranslated")
    assert sorted(f.message.split(":")[0] for f in untranslated) == ["de", "es"]
    line = SOURCES["alert/email.text.j2"].count("\n") + 1
    for finding in untranslated:
        assert finding.level == "warning"
        assert (finding.path, finding.line) == ("alert/email.text.j2", line)
        assert "1 message not translated" in finding.message
        assert "'Please keep your validator keys offline.'" in finding.message


def test_an_over_long_subject_is_an_error() -> None:
    padding = "Read this before you do anything else " * 5
    edit = replace_line(17, f"{padding}{{{{ alert.summary }}}}")
    findings = run("alert", "alert/email.subject.j2", edit)
    errors = [f for f in of(findings, "subject-length") if f.level == "error"]
    assert [f.path for f in errors] == ["alert/email.subject.j2"]
    assert f"the limit is {SETTINGS.max_subject_chars}" in errors[0].message


def test_a_subject_mail_clients_cut_is_a_warning() -> None:
    edit = replace_line(2, '{{ _("Public notice: %(title)s", title=policy.title) }} ' + "x" * 40)
    findings = run("public-advisory", "public-advisory/email.subject.j2", edit)
    lengths = of(findings, "subject-length")
    assert [(f.level, f.path) for f in lengths] == [("warning", "public-advisory/email.subject.j2")]
    assert f"after about {MAIL_SUBJECT_CHARS}" in lengths[0].message
    assert not of(run("public-advisory"), "subject-length")


def test_an_over_long_slack_text_is_an_error() -> None:
    edit = append(
        "{% for n in range(80) %}Check validator {{ n }} & <its> peers now.\n{% endfor %}"
    )
    findings = run("status-update", "status-update/email.text.j2", edit)
    slack = of(findings, "slack-length")
    assert [(f.level, f.path) for f in slack] == [("error", "status-update/email.text.j2")]
    assert "3000" in slack[0].message
    assert not of(run("status-update"), "slack-length")


def test_reading_confidential_in_the_public_advisory_is_an_error_naming_the_tier() -> None:
    edit = replace_line(4, "{{ policy.summary }} {{ confidential.vulnerability }}")
    findings = run("public-advisory", "public-advisory/email.text.j2", edit)
    leaks = of(findings, "confidential")
    assert [(f.level, f.path, f.line) for f in leaks] == [
        ("error", "public-advisory/email.text.j2", 4)
    ]
    assert "tier 'public'" in leaks[0].message
    assert "rule 'policy-emergency-public'" in leaks[0].message


def test_a_guarded_read_of_confidential_is_fine() -> None:
    edit = append(
        "{% if confidential is not none %}{{ confidential.vulnerability }}{% endif %}\n"
        "{{ confidential.vulnerability if confidential else '' }}\n"
    )
    findings = run("public-advisory", "public-advisory/email.text.j2", edit)
    assert not of(findings, "confidential")
    assert not [f for f in findings if f.level == "error"]


def test_the_confidential_check_needs_routing() -> None:
    edit = replace_line(4, "{{ policy.summary }} {{ confidential.vulnerability }}")
    findings = run("public-advisory", "public-advisory/email.text.j2", edit, routing=None)
    assert not of(findings, "confidential")
    # Rendering for an uncleared reader still fails, and says so.
    assert of(findings, "undefined")


def test_audiences_follow_routing_clearances() -> None:
    advisory = template_audiences(ROUTING, "public-advisory")
    assert ("tier 'public' (rule 'policy-emergency-public')", Clearance.PUBLIC) in advisory
    change = dict(template_audiences(ROUTING, "policy-change"))
    assert change["tier 'responders' (rule 'policy-emergency-insiders')"] is Clearance.CONFIDENTIAL
    assert change["tier 'partners' (rule 'policy-emergency-insiders')"] is Clearance.RESTRICTED
    updates = dict(template_audiences(ROUTING, "status-update"))
    assert any(who.startswith("tier 'partners'") for who in updates)
    assert all(
        level is Clearance.PUBLIC for level in dict(template_audiences(ROUTING, "digest")).values()
    )


def test_a_broken_shared_macro_is_found_in_the_templates_using_it() -> None:
    # labels.j2 line 8: the "critical" branch of the severity macro.
    edit = replace_line(8, '{%- if value == "critical" -%}{{ 1 // 0 }}')
    findings = run(SHARED, "labels.j2", edit)
    render = of(findings, "render")
    assert [(f.path, f.line) for f in render] == [("labels.j2", 8)]
    assert "ZeroDivisionError" in render[0].message
    static = run(SHARED, "labels.j2", replace_line(8, '{%- if value == "critical" -%}{{ nope }}'))
    assert [(f.path, f.line) for f in of(static, "undefined")] == [("labels.j2", 8)]


def test_lint_results_do_not_leak_between_drafts() -> None:
    broken = run("alert", "alert/email.text.j2", replace_line(12, "{% if %}"))
    assert of(broken, "syntax")
    assert not [f for f in run("alert") if f.level == "error"]
    assert of(run("alert", "alert/email.text.j2", replace_line(12, "{% if %}")), "syntax")


def test_the_shipped_labels_give_every_word_the_engine_asks_for() -> None:
    assert not of(run(SHARED), "labels")


def test_a_failing_label_macro_is_an_error_with_its_line() -> None:
    """Slack's words are rendered outside any template: the lint renders them itself."""
    source = SOURCES["labels.j2"]
    line = source[: source.index('"Acknowledged by %(name)s."')].count("\n") + 1
    broken = run(SHARED, "labels.j2", replace_line(line, "{{ name.no_such.thing }}"))
    errors = of(broken, "labels")
    assert errors and all(f.level == "error" for f in errors)
    assert {(f.path, f.line) for f in errors} == {("labels.j2", line)}
    assert "slack_reply('done', 'acknowledged', 'Ada Lovelace')" in errors[0].message


def test_a_missing_label_macro_is_a_warning_naming_the_locales() -> None:
    """Without the slack macro, Slack would fall back to English: said once per word."""
    renamed = run(SHARED, "labels.j2", lambda s: s.replace("macro slack(", "macro slack_old("))
    warnings = of(renamed, "labels")
    assert len(warnings) == 6 and all(f.level == "warning" for f in warnings)
    assert "slack('acknowledge') is missing or renders nothing in de, en, es" in warnings[3].message
