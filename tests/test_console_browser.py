"""The console in a real browser (Debian's Chromium via Playwright) against a real engine:
broker in, SQLite, aiosmtpd inbox out. See console_harness.py for what runs and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

# Its fixtures come in as a plugin (below); its asserts are rewritten like a conftest's.
pytest.register_assert_rewrite("console_harness")

from console_harness import (  # noqa: E402
    APPROVER,
    COMMANDER,
    DESKTOP,
    EDITOR,
    PHONE,
    VIEWER,
    Console,
    SignedIn,
    mail_text,
)

pytest_plugins = ["console_harness"]
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SUBJECT_FIELD = 'textarea[name="file:alert/email.subject.j2"]'
GERMAN_SUBJECT = "#preview section.preview[data-locale=de] .subject"


async def open_editor(page: Page, console: Console, template: str = "alert") -> None:
    """From the template's page, follow Edit; wait for the first preview."""
    await page.goto(console.url(f"/console/templates/{template}"))
    await page.locator("#edit").click()
    await page.wait_for_url(f"**/console/templates/{template}/edit")
    await expect(page.locator("#preview")).to_have_attribute("data-state", "ready")


async def prefix_subject(page: Page, prefix: str) -> None:
    """Put ``prefix`` before the email subject template's output (outside the translated
    text, so every language keeps its translation) and wait for the German preview."""
    field = page.locator(SUBJECT_FIELD)
    source = await field.input_value()
    await field.fill(prefix + source)
    await expect(page.locator(GERMAN_SUBJECT)).to_contain_text(prefix.strip())


def _version_number(heading: str, template: str = "alert") -> int:
    found = re.search(rf"\b{template} v(\d+)\b", heading)
    assert found, heading
    return int(found.group(1))


async def test_editor_drafts_approver_approves_and_the_next_alert_uses_it(
    console: Console, signed_in: SignedIn
) -> None:
    """Edit with a live German preview, save, four-eyes approval, and the next page uses it."""
    nora = await signed_in(EDITOR)
    await open_editor(nora, console)
    await expect(nora.locator("main")).to_contain_text(
        "(live): saving creates a new draft. A draft goes out only after another person"
    )
    await prefix_subject(nora, "[DRILL] ")
    german = await nora.locator(GERMAN_SUBJECT).inner_text()
    assert german.startswith("[DRILL] [Kritisch] Alarm:"), german
    english = await nora.locator("#preview section.preview[data-locale=en] .subject").inner_text()
    assert english.startswith("[DRILL] [Critical] Alert:"), english
    # Lint answers on its own (slower) request: wait for its verdict on these very files.
    edited = await nora.locator("#preview .grid").get_attribute("data-hash")
    assert edited
    await expect(nora.locator("#lint .lint")).to_have_attribute("data-hash", edited)
    await expect(nora.locator("#lint .level-error")).to_have_count(0)
    await nora.locator("input[name=note]").fill("Drill week: mark every page")
    await nora.locator("#save").click()
    await nora.wait_for_url(re.compile(r"/console/versions/\d+$"))
    draft_url = nora.url
    await expect(nora.locator("#state")).to_have_text("draft")
    await expect(nora.locator("#own-draft")).to_be_visible()
    await expect(nora.locator("#approve")).to_have_count(0)
    await expect(nora.locator("main p.muted").first).to_contain_text(
        re.compile(rf"By {EDITOR}, \S+ \S+ UTC\s+· content")
    )
    await expect(nora.locator("pre.diff .add").first).to_contain_text("[DRILL]")
    number = _version_number(await nora.locator("h1").inner_text())
    assert number >= 2

    tomas = await signed_in(APPROVER)
    await tomas.goto(draft_url)
    await expect(tomas.locator("#own-draft")).to_have_count(0)
    await tomas.locator("#approve").click()
    await tomas.wait_for_url(draft_url)
    await expect(tomas.locator("h1 .badge.live")).to_have_text("live")
    await expect(tomas.locator("main")).to_contain_text(f"approved by {APPROVER}")

    published = await console.publish_alert()
    alert_id = await console.alert_id(published)
    rows = await console.wait_for_delivery(alert_id)
    mails = await console.wait_for_mail(lambda m: published.tag in str(m["Subject"]), len(rows))
    assert len(mails) == len(rows) > 1
    # (A subject too long for the "Subject:" line is folded onto the next; the parser keeps
    # that line's leading space, a reader does not show it.)
    subjects = {str(m["To"]): str(m["Subject"]).strip() for m in mails}
    assert all(s.startswith("[DRILL] ") for s in subjects.values()), subjects
    in_german = [subjects[str(m["To"])] for m in mails if m["Content-Language"] == "de"]
    assert in_german, subjects
    assert all(s.startswith("[DRILL] [Kritisch] Alarm:") for s in in_german), subjects
    for row in rows:
        assert f"alert v{number}" in (row["template_version"] or ""), row["template_version"]
    # The incident's timeline says which approved version each sent message came from.
    await tomas.goto(console.url(f"/console/incidents/{alert_id}"))
    await expect(tomas.locator(".timeline .entry-notification").first).to_contain_text(
        f"from alert v{number}, shared v1"
    )


async def test_an_unapproved_draft_never_reaches_an_inbox(
    console: Console, signed_in: SignedIn
) -> None:
    """A saved draft renders in the preview but is not what the engine sends."""
    marker = "UNAPPROVED-DRAFT-7Q2"
    nora = await signed_in(EDITOR)
    await open_editor(nora, console)
    await prefix_subject(nora, f"{marker} ")
    text = nora.locator('textarea[name="file:alert/email.text.j2"]')
    await text.fill(f"{marker}\n" + await text.input_value())
    await expect(nora.locator("#preview section.preview[data-locale=en] pre.text")).to_contain_text(
        marker
    )
    await nora.locator("#save").click()
    await nora.wait_for_url(re.compile(r"/console/versions/\d+$"))
    await expect(nora.locator("#state")).to_have_text("draft")

    published = await console.publish_alert()
    alert_id = await console.alert_id(published)
    rows = await console.wait_for_delivery(alert_id)
    mails = await console.wait_for_mail(lambda m: published.tag in str(m["Subject"]), len(rows))
    assert mails
    leaked = [str(m["Subject"]) for m in console.mail() if marker in mail_text(m)]
    assert not leaked, leaked

    # Withdraw it, so later tests edit from the live version again.
    await nora.get_by_role("button", name="Discard").click()
    await nora.wait_for_url("**/console/templates/alert")
    await expect(nora.locator("table.versions")).to_contain_text("discarded")


async def test_commander_acknowledges_from_the_incident_page(
    console: Console, signed_in: SignedIn
) -> None:
    """Incident list → incident → Acknowledge; the timeline and the audit log show it."""
    published = await console.publish_alert()
    alert_id = await console.alert_id(published)
    mei = await signed_in(COMMANDER)
    await mei.goto(console.url("/console/incidents"))
    row = mei.locator("#incidents tbody tr", has_text=published.alertname)
    await expect(row).to_contain_text("firing")
    await row.get_by_role("link", name=published.alertname).click()
    await mei.wait_for_url(f"**/console/incidents/{alert_id}")
    await expect(mei.locator("#alert-state")).to_have_text("firing")
    await mei.get_by_role("button", name="Acknowledge").click()
    await mei.wait_for_url(f"**/console/incidents/{alert_id}")
    await expect(mei.locator("#alert-state")).to_have_text("acknowledged")
    await expect(mei.locator("main")).to_contain_text(f"acknowledged by {COMMANDER}")
    await expect(mei.locator(".timeline li.entry-acknowledged")).to_contain_text(
        f"Acknowledged by {COMMANDER}"
    )
    await expect(mei.get_by_role("button", name="Acknowledge")).to_have_count(0)
    assert await console.alert_status(alert_id) == "acknowledged"

    await mei.get_by_role("link", name="Audit log").click()
    await mei.locator("input[name=action]").fill("alert.acknowledge")
    await mei.get_by_role("button", name="Filter").click()
    await mei.wait_for_url(re.compile(r"/console/audit\?.*action=alert.acknowledge"))
    entry = mei.locator("#audit tbody tr", has_text=alert_id)
    await expect(entry).to_have_count(1)
    cells = [c.strip() for c in await entry.locator("td").all_inner_texts()]
    assert cells[1:4] == [COMMANDER, "alert.acknowledge", alert_id], cells


async def test_a_viewer_sees_no_edit_or_acknowledge_controls(
    console: Console, signed_in: SignedIn
) -> None:
    """View-only: no Edit link, no Acknowledge/Resolve buttons, and the editor answers 403."""
    published = await console.publish_alert()
    alert_id = await console.alert_id(published)
    olivia = await signed_in(VIEWER)

    await olivia.goto(console.url("/console/templates/alert"))
    await expect(olivia.locator("h1")).to_have_text("Template alert")
    await expect(olivia.locator("table.versions")).to_contain_text("live")
    await expect(olivia.locator("#edit")).to_have_count(0)
    await expect(olivia.get_by_role("link", name="Edit")).to_have_count(0)

    await olivia.goto(console.url(f"/console/incidents/{alert_id}"))
    await expect(olivia.locator("#alert-state")).to_have_text("firing")
    await expect(olivia.locator(".timeline")).to_contain_text("Alert fired")
    await expect(olivia.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(olivia.get_by_role("button", name="Resolve")).to_have_count(0)
    await expect(olivia.locator("form[action$='/acknowledge']")).to_have_count(0)

    reply = await olivia.goto(console.url("/console/templates/alert/edit"))
    assert reply is not None and reply.status == 403
    await expect(olivia.locator("h1")).to_have_text("Not allowed")
    await expect(olivia.locator("textarea")).to_have_count(0)

    # The same pages for an editor and a commander do have the controls (the checks above
    # would pass on a broken page that shows nothing at all).
    mei = await signed_in(COMMANDER)
    await mei.goto(console.url(f"/console/incidents/{alert_id}"))
    await expect(mei.get_by_role("button", name="Acknowledge")).to_be_visible()
    nora = await signed_in(EDITOR)
    await nora.goto(console.url("/console/templates/alert"))
    await expect(nora.locator("#edit")).to_be_visible()


async def test_a_form_without_its_csrf_token_is_refused(
    console: Console, signed_in: SignedIn
) -> None:
    """A signed-in browser's POST to acknowledge without the form's token: 403, nothing done."""
    published = await console.publish_alert()
    alert_id = await console.alert_id(published)
    mei = await signed_in(COMMANDER)
    await mei.goto(console.url(f"/console/incidents/{alert_id}"))
    form = mei.locator("form[action$='/acknowledge']")
    action = await form.get_attribute("action")
    assert action == f"/console/incidents/{alert_id}/acknowledge"

    post = """async ([url, fields]) => {
        const reply = await fetch(url, {method: "POST", body: new URLSearchParams(fields),
            credentials: "same-origin", redirect: "manual"});
        return [reply.status, await reply.text()];
    }"""
    status, body = await mei.evaluate(post, [action, {"note": "no token"}])
    assert status == 403, body
    assert "security token" in body
    status, body = await mei.evaluate(post, [action, {"note": "forged", "csrf": "guessed"}])
    assert status == 403, body
    assert await console.alert_status(alert_id) == "firing"
    await mei.reload()
    await expect(mei.locator("#alert-state")).to_have_text("firing")
    await expect(mei.locator(".timeline li.entry-acknowledged")).to_have_count(0)

    # With the token the page carries, the same request works (the refusal was the token's).
    token = await form.locator("input[name=csrf]").input_value()
    status, body = await mei.evaluate(post, [action, {"note": "by hand", "csrf": token}])
    assert status in (0, 303), (status, body)  # an opaque redirect reads as status 0
    assert await console.alert_status(alert_id) == "acknowledged"


async def _shoot(page: Page, path: Path, buttons: list[str]) -> None:
    """A full-page screenshot to ``path``, after checking the page fits its viewport's width
    and that ``buttons`` (selectors) are visible and inside it."""
    viewport = page.viewport_size
    assert viewport is not None
    width = viewport["width"]
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1] + 1, f"{page.url} scrolls sideways at {width} px: {widths}"
    # Sign out, and sign out everywhere.
    who = ["header.top form.who button:not([formaction])", "header.top form.who button[formaction]"]
    for selector in [*who, *buttons]:
        button = page.locator(selector)
        await expect(button).to_be_visible()
        box = await button.bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box, width)
    png = await page.screenshot(path=path, full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, path
    shot_width = int.from_bytes(png[16:20], "big")  # IHDR: a wider page shoots wider
    assert shot_width == width, (path, shot_width, width)


async def test_screenshots_at_desktop_and_phone_size(
    console: Console, signed_in: SignedIn, tmp_path: Path
) -> None:
    """Incident list, editor with preview, version page: they fit 1280 and 390 px wide."""
    await console.publish_alert()
    # A draft by the editor, for the approver's version page (Approve, Discard, a diff).
    nora = await signed_in(EDITOR)
    await open_editor(nora, console)
    await prefix_subject(nora, "[EXERCISE] ")
    await nora.locator("#save").click()
    await nora.wait_for_url(re.compile(r"/console/versions/\d+$"))
    draft_url = nora.url

    for name, viewport, mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
        page = await signed_in(APPROVER, viewport=viewport, mobile=mobile)

        await page.goto(console.url("/console/incidents"))
        await expect(page.locator("#incidents tbody tr").first).to_contain_text("critical")
        await _shoot(page, tmp_path / f"incidents-{name}.png", ["form.filters button"])

        await open_editor(page, console)
        await expect(page.locator(GERMAN_SUBJECT)).to_contain_text("Kritisch")
        german_html = page.frame_locator("#preview section.preview[data-locale=de] iframe")
        await expect(german_html.locator("body")).to_contain_text("Guten Tag")
        # Chromium paints the sandboxed HTML previews (frames of their own) only while they
        # are on screen: the full-page shot is taken with the German one in view (at desktop
        # size the three sit side by side; on a phone the others come out empty).
        await page.locator("#preview iframe").first.scroll_into_view_if_needed()
        await _shoot(page, tmp_path / f"editor-{name}.png", ["#save"])

        await page.goto(draft_url)
        await _shoot(
            page,
            tmp_path / f"version-{name}.png",
            ["#approve", "form[action$='/discard'] button"],
        )

    await nora.goto(draft_url)
    await nora.get_by_role("button", name="Discard").click()
    await nora.wait_for_url("**/console/templates/alert")


async def test_slack_gets_its_own_words_keeping_unsaved_edits(
    console: Console, signed_in: SignedIn, tmp_path: Path
) -> None:
    """The editor types, then gives Slack its own subject and text: nothing typed is lost,
    the Slack preview shows Slack's layout in German (on a phone too), and Slack can be made
    to say what the email says again."""
    nora = await signed_in(EDITOR, viewport=PHONE, mobile=True)
    await open_editor(nora, console, "policy-change")
    subject = nora.locator('textarea[name="file:policy-change/email.subject.j2"]')
    await subject.fill("[TYPED] " + await subject.input_value())
    await nora.get_by_role("button", name="Give slack its own subject and text").click()
    await nora.wait_for_url(re.compile(r"/console/templates/policy-change/edit\?from=\d+$"))
    slack_subject = nora.locator('textarea[name="file:policy-change/slack.subject.j2"]')
    await expect(slack_subject).to_have_value(re.compile(r"^\[TYPED\] "))
    await expect(subject).to_have_value(re.compile(r"^\[TYPED\] "))

    await slack_subject.fill("[SLACK] " + await slack_subject.input_value())
    await nora.locator("select[name=channel]").select_option("slack")
    german = nora.locator("#preview section.preview[data-locale=de] .slack")
    await expect(german.locator(".slack-header")).to_contain_text("[SLACK] [TYPED]")
    await expect(german.locator(".slack-context")).to_contain_text("Risiko:")
    await expect(nora.locator("#preview")).to_have_attribute("data-state", "ready")
    await german.scroll_into_view_if_needed()
    await _shoot(nora, tmp_path / "slack-preview-phone.png", ["#save"])

    await nora.get_by_role("button", name="Let slack say what the email says").click()
    await nora.wait_for_url(re.compile(r"/console/templates/policy-change/edit\?from=\d+$"))
    await expect(slack_subject).to_have_count(0)
    await expect(subject).to_have_value(re.compile(r"^\[TYPED\] "))
    await nora.locator("#save").click()
    await nora.wait_for_url(re.compile(r"/console/versions/\d+$"))
    await nora.get_by_role("button", name="Discard").click()
    await nora.wait_for_url("**/console/templates/policy-change")
