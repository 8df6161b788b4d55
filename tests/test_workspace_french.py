"""The press office's workspace in French (issue 14, "Quality bar"): a browser asking for
French (Accept-Language) gets every page in French, with ``<html lang="fr">``, French dates
and no English left of its key labels; the switch in the header ("Français", "English")
keeps the choice in a cookie and brings the browser back where it was; the messages made
in Python — what was done, a refusal, the release form's validator — and the scripts'
strings are French too; the catalogue has a French text for every message of the
workspace. An English browser keeps the workspace exactly as it was."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.core.i18n import LOCALE_DIR
from distributor.core.models import ReleaseState
from distributor.core.roles import WHAT_IT_DOES, Role
from distributor.web import accounts, accreditations_page, admin, contacts_page, create_app
from distributor.web.workspace_i18n import SCRIPT_MESSAGES, SHAPES, translator
from tests.clients import logged_in_as
from tests.corrections import send_release
from tests.helpers import add_subscribers, add_topics, csrf_of, make_release

FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
# Labels every page of the workspace shows in English, that a French page must not.
ENGLISH_FRAME = ("Skip to content", "Log out", "Times are shown in", ">Releases<", "Dashboard")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "admin"
# A msgid whose French is the same word ("Date", "Page", "Version"…).
SAME_IN_FRENCH = {
    "Actions", "Date", "Date ({timezone})", "Documents", "Embargo", "HTML ({language})",
    "Images", "Logo", "Page", "Version", "embargo", "date",
}  # fmt: skip


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url, "languages": ["en", "fr"]})


@pytest.fixture
def office(s: Settings) -> dict[str, int]:
    """Topics, French and English readers, a release sent to them and a draft: the ids."""
    add_topics(s, "climate", "energy")
    add_subscribers(s, [("ana@example.com", "Ana", "fr", "climate"),
                        ("bob@example.com", "Bob", "en", "climate;energy")])  # fmt: skip
    sent = make_release(s, title="Accord sur le climat")
    send_release(s, sent.id)
    draft = make_release(s, slug="grid", title="Réseau électrique", topics="energy")
    return {"sent": sent.id, "draft": draft.id}


@pytest.fixture
def camille(s: Settings, office: dict[str, int]) -> Iterator[TestClient]:
    """An admin whose browser asks for French."""
    with logged_in_as(s, "camille@example.org", "admin") as client:
        client.headers.update(FRENCH)
        yield client


def french_page(client: TestClient, path: str, *expected: str) -> str:
    """The page at ``path``, checked to be French: its language, the French ``expected``,
    none of the frame's English labels. Its text, unescaped."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    assert '<html lang="fr">' in page.text, path
    text = html.unescape(page.text)
    for label in ("Aller au contenu", *expected):
        assert label in text, (path, label)
    for label in ENGLISH_FRAME:
        assert label not in text, (path, label)
    return text


def test_every_page_of_the_workspace_reads_in_french_for_a_french_browser(
    camille: TestClient, office: dict[str, int]
) -> None:
    sent, draft = office["sent"], office["draft"]
    dashboard = french_page(camille, "/admin", "Tableau de bord", "Nouveau communiqué",
                            "Abonnés confirmés", "Se déconnecter", "publié")  # fmt: skip
    assert "Confirmed subscribers" not in dashboard and "New release" not in dashboard
    listing = french_page(camille, "/admin/releases", "2 communiqués trouvés", "Dupliquer",
                          "Le titre contient", "brouillon")  # fmt: skip
    assert "releases found" not in listing and "Title contains" not in listing
    editor = french_page(camille, "/admin/releases/new", "Chapeau", "Thèmes (au moins un)",
                         "Créer le brouillon", "Aperçu", "Climate (fr)")  # fmt: skip
    assert "Create the draft" not in editor and "Topics (at least one)" not in editor
    release = french_page(camille, f"/admin/releases/{sent}", "Envoyer un test", "Historique",
                          "Ajouter la version en français", "Retirer…")  # fmt: skip
    assert "Send a test" not in release and "History" not in release
    drafted = french_page(camille, f"/admin/releases/{draft}", "Qui le recevra",
                          "Modifier le brouillon", "Programmer", "1 personne")  # fmt: skip
    assert "Who will receive it" not in drafted and "Edit the draft" not in drafted
    french_page(camille, f"/admin/releases/{draft}/publish", "Oui, publier et envoyer à 1 personne")
    french_page(camille, f"/admin/releases/{sent}/withdraw", "Non, le garder")
    french_page(camille, f"/admin/releases/{sent}/correct", "Corriger le communiqué publié",
                "Ce qu'une correction conserve")  # fmt: skip
    french_page(camille, f"/admin/releases/{draft}/edit", "Enregistrer le brouillon")
    french_page(camille, "/admin/accounts", "Inviter quelqu'un", "administrateur")
    french_page(camille, "/admin/contacts", "Ajouter un contact presse", "0 contact presse.")
    french_page(camille, "/admin/settings", "Nom de l'organisation (en)", "Adresse postale")
    french_page(camille, "/admin/account/2fa", "Configurer la connexion en deux étapes")


def test_a_release_page_offers_the_missing_version_and_dates_in_french(
    s: Settings, camille: TestClient
) -> None:
    """Dates as French writes them ("20 nov. 2026"), the language to add named in French."""
    only_english = make_release(s, slug="solo", title="Solo")
    path = f"/admin/releases/{only_english.id}"
    text = french_page(camille, path, "Ajouter la version en français")
    assert re.search(r"\d{1,2} [a-zéû]+\.? 20\d\d \d\d:\d\d", text), "a French date"
    assert not re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d", text), "no ISO date left"


def test_the_login_page_and_its_refusal_are_french(s: Settings) -> None:
    with TestClient(create_app(s), base_url="https://testserver", headers=FRENCH) as client:
        page = french_page_logged_out(client, "/admin/login", "Se connecter", "Mot de passe")
        refused = client.post("/admin/login", data={"email": "nobody@example.org",
                              "password": "not the password", "csrf": csrf_of(page)})  # fmt: skip
        assert refused.status_code == 401
        assert "Adresse e-mail ou mot de passe incorrect." in html.unescape(refused.text)


def french_page_logged_out(client: TestClient, path: str, *expected: str) -> str:
    page = client.get(path)
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    for label in expected:
        assert label in html.unescape(page.text), label
    assert "Email address" not in page.text and ">Log in<" not in page.text
    return page.text


def test_the_switch_keeps_the_choice_and_comes_back_to_the_page(
    s: Settings, office: dict[str, int]
) -> None:
    with logged_in_as(s, "jo@example.org", "writer") as jo:
        english = jo.get("/admin/releases?state=draft")
        assert '<html lang="en">' in english.text and ">Releases<" in english.text
        link = re.search(r'href="(/admin/language/fr\?next=[^"]+)"[^>]*>Français<', english.text)
        assert link, "the header offers French"
        chosen = jo.get(html.unescape(link.group(1)), follow_redirects=False)
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/admin/releases?state=draft"
        french = jo.get(chosen.headers["location"])  # no Accept-Language: the cookie says
        assert '<html lang="fr">' in french.text and "1 communiqué trouvé" in french.text
        assert re.search(r'href="/admin/language/en\?next=[^"]+"[^>]*>English<', french.text)
        jo.get("/admin/language/en?next=/admin")
        assert '<html lang="en">' in jo.get("/admin").text
        # Never elsewhere: another site, a path outside the workspace, a scheme-relative URL.
        for away in ("https://evil.example/admin", "//evil.example/admin", "/subscribe",
                     "/admin/../x", "/admin/%2e%2e/x", "/admin\\..\\x"):  # fmt: skip
            gone = jo.get("/admin/language/fr", params={"next": away}, follow_redirects=False)
            assert gone.headers["location"] == "/admin", away


def test_a_refused_form_comes_back_in_french_with_the_switch_to_a_page_that_opens(
    camille: TestClient, office: dict[str, int]
) -> None:
    """The answer to a POST (a refused test send) switches back to the release's page."""
    page = camille.get(f"/admin/releases/{office['sent']}")
    form = {"addresses": "not an address", "csrf": csrf_of(page.text)}
    refused = camille.post(f"/admin/releases/{office['sent']}/test", data=form)
    assert refused.status_code == 422 and '<html lang="fr">' in refused.text
    assert f'href="/admin/language/en?next=/admin/releases/{office["sent"]}"' in refused.text


def test_the_release_form_says_what_is_wrong_in_french_keeping_what_was_typed(
    camille: TestClient,
) -> None:
    form = camille.get("/admin/releases/new")
    typed = {"title": "Un titre", "lang": "fr", "date": "2026-11-20T09:00", "dateline": "",
             "lead": "Le chapeau.", "body": "", "contacts": "", "embargo": "",
             "csrf": csrf_of(form.text)}  # fmt: skip
    cases = {
        "no topic": ({}, "communiqué\u00a0: champ «\u202fThèmes\u202f»\u00a0: "
                         "choisissez-en au moins un"),
        "no title": ({"title": "", "topics": "climate"},
                     "champ «\u202fTitre\u202f»\u00a0: ne doit pas être vide"),
        "bad date": ({"date": "2026-13-40T09:00", "topics": "climate"},
                     "date\u00a0: '2026-13-40T09:00' n'est pas une date et une heure"),
        "bad phone": ({"topics": "climate", "contacts": "Jo; Chef; abc; jo@example.org"},
                      "n'est pas un numéro de téléphone"),
    }  # fmt: skip
    for case, (changes, said) in cases.items():
        answer = camille.post("/admin/releases/new", data={**typed, **changes})
        assert answer.status_code == 422, case
        text = html.unescape(answer.text)
        shown = re.search(r'id="editor-error">([^<]*)<', text)
        assert shown and said in shown.group(1), (case, shown and shown.group(1))
        assert "should have" not in shown.group(1) and "field '" not in shown.group(1), case
        assert "Le chapeau.</textarea>" in text, case  # nothing typed is lost


def test_refusals_and_what_was_done_are_french(s: Settings, office: dict[str, int]) -> None:
    with logged_in_as(s, "jo@example.org", "writer") as jo:
        jo.headers.update(FRENCH)
        page = jo.get(f"/admin/releases/{office['draft']}")
        refused = jo.post(f"/admin/releases/{office['draft']}/publish",
                          data={"csrf": csrf_of(page.text)})  # fmt: skip
        assert refused.status_code == 403
        said = html.unescape(refused.text)
        rights = "publier, programmer, corriger ou retirer des communiqués"
        assert f"un rédacteur ne peut pas {rights}" in said
        assert "Non autorisé" in said and "cannot" not in said
        done = jo.get(f"/admin/releases/{office['draft']}?done=saved")
        assert "Brouillon enregistré." in done.text and "Draft saved." not in done.text


def test_the_scripts_get_their_words_in_the_page_language(camille: TestClient, s: Settings) -> None:
    french = camille.get("/admin/releases/new").text
    given = re.search(r"data-strings='([^']*)'", french)
    assert given, "the page gives its scripts their words"
    words = json.loads(html.unescape(given.group(1)))
    assert words["Saved at {time}"] == "Enregistré à {time}"
    assert words["Sending…"] == "Envoi en cours…"
    with logged_in_as(s, "en@example.org", "writer") as english:
        assert "data-strings='{}'" in english.get("/admin").text  # English: the scripts' own


def test_every_message_a_script_shows_is_one_the_page_gives() -> None:
    """A string passed to text(…) or say(…) in the scripts, missing from SCRIPT_MESSAGES,
    would stay English in a French page."""
    found: set[str] = set()
    for script in ("admin.js", "editor.js", "uploads.js"):
        source = (TEMPLATES / script).read_text()
        # The calls' first argument, a string literal maybe split over "a" + "b" lines.
        for call in re.finditer(r'\b(?:text|say)\(((?:"[^"]*"\s*\+?\s*)+)', source):
            found.add("".join(re.findall(r'"([^"]*)"', call.group(1))))
    assert found - {"Title", "Lead", "Body"} <= set(SCRIPT_MESSAGES), found - set(SCRIPT_MESSAGES)
    assert len(found) >= 20


def workspace_msgids() -> set[str]:
    """Every message of the workspace: its templates' labels, its scripts', the texts its
    routes announce and refuse with, the shapes of the validator's messages, the states,
    roles and rights shown."""
    ids: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        ids |= set(re.findall(r'(?<![n\w])_\("([^"]+)"\)', source))
        ids |= set(re.findall(r"(?<![n\w])_\('([^']+)'\)", source))
        for singular, plural in re.findall(r'ngettext\("([^"]+)", "([^"]+)"', source):
            ids |= {singular, plural}
    ids |= set(SCRIPT_MESSAGES) | set(SHAPES)
    ids |= set(admin.DONE.values()) | set(accounts.DONE.values()) | set(contacts_page.DONE.values())
    ids |= set(accreditations_page.DONE.values())
    ids |= {admin.EXPIRED_FORM, "Wrong email address or password.", "Not allowed"}
    ids |= {state.value for state in ReleaseState} | {role.value for role in Role}
    ids |= set(WHAT_IT_DOES.values())
    return ids


def test_the_catalogue_has_french_for_every_message_of_the_workspace() -> None:
    with (LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po, locale="fr")
    french: dict[str, str] = {}
    for entry in catalogue:
        if not entry.id:
            continue
        if isinstance(entry.id, tuple):  # both forms translated, each with its count
            forms = [str(form) for form in entry.string or ()]
            assert len(forms) == 2 and all(forms), entry.id
            assert all("{count}" in form for form in forms), entry.id
            french.update(zip(entry.id, forms, strict=True))
        else:
            french[str(entry.id)] = str(entry.string or "")
    needed = workspace_msgids()
    assert len(needed) > 300
    untranslated = sorted(m for m in needed if not french.get(m))
    assert untranslated == []
    same = sorted(m for m in needed if french[m] == m)
    assert same == sorted(SAME_IN_FRENCH & needed)
    # A translation keeps every {place} of its message (else .format fails or drops one).
    for message in needed:
        assert set(re.findall(r"\{\w+\}", french[message])) == set(
            re.findall(r"\{\w+\}", message)
        ), message


def test_a_message_made_in_python_is_translated_in_one_place() -> None:
    """Translator.say: a msgid, a known shape (with its problem translated in turn), a
    list of problems; anything else stays as it was, English punctuation and all."""
    say = translator("fr").say
    assert say("Draft saved.") == "Brouillon enregistré."
    assert say("release: field 'lead': the release has no lead paragraph") == (
        "communiqué\u00a0: champ «\u202fChapeau\u202f»\u00a0: le communiqué n'a pas de chapeau"
    )
    assert say("release: field 'title': String should have at most 500 characters") == (
        "communiqué\u00a0: champ «\u202fTitre\u202f»\u00a0: 500 caractères au plus"
    )
    assert say(
        "images.0.alt: image 1 (photo.jpg) has no alt text: say what it shows, for those "
        "who cannot see it"
    ).startswith("images.0.alt\u00a0: l'image 1 (photo.jpg) n'a pas de texte alternatif")
    assert say("a publisher cannot manage accounts") == "un éditeur ne peut pas gérer les comptes"
    unknown = "queue: something nobody translated"
    assert say(unknown) == unknown
    assert translator("en").say("Draft saved.") == "Draft saved."
