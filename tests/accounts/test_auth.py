"""Sign-up, log-in, log-out and password change through allauth's real views."""

import re
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_a_person_signs_up_with_email_and_password_and_is_signed_in(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "Ada@Example.com", "password1": PASSWORD, "password2": PASSWORD},
        follow=True,
    )
    assert response.status_code == 200
    user = User.objects.get()
    assert user.email == "ada@example.com"  # allauth keeps emails lower-case
    assert response.context["user"] == user
    assert response.redirect_chain[-1][0] == "/chat/"
    assert len(mail.outbox) == 1  # the confirmation email, on the console backend by default


def test_sign_up_refuses_a_taken_email_and_a_weak_password(client: Client) -> None:
    make_user("taken@example.com")
    taken = client.post(
        "/accounts/signup/",
        {"email": "taken@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    # Said, with optional email verification (README, "Decisions": enumeration at sign-up).
    assert "already registered" in taken.content.decode()
    weak = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "123", "password2": "123"},
    )
    assert weak.status_code == 200
    assert "too short" in weak.content.decode()
    assert User.objects.count() == 1


def test_sign_up_shows_each_error_under_its_own_field(client: Client) -> None:
    """Not above the field's label (form.as_p), where it reads as the field above's."""
    weak = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "123", "password2": "123"},
    ).content.decode()
    assert (
        weak.index('id="id_password1"') < weak.index("too short") < weak.index('id="id_password2"')
    )
    assert weak.index("too common") < weak.index('id="id_password2"')
    assert weak.index('id="id_email"') < weak.index('id="id_password1"')  # the order is kept

    mismatch = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD + "!"},
    ).content.decode()
    assert mismatch.index('id="id_password2"') < mismatch.index("the same password")


def test_a_forms_own_errors_come_before_its_fields(client: Client) -> None:
    make_user("grace@example.com")
    page = client.post(
        "/accounts/login/", {"login": "grace@example.com", "password": "nope"}
    ).content.decode()
    assert page.index('class="errorlist nonfield"') < page.index("not correct")
    assert page.index("not correct") < page.index('id="id_login"')


TITLE_CASE = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")  # "Sign In", "Reset My Password"


def words_shown(html: str) -> str:
    """The title and the main part's text, tags dropped."""
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    main = re.search(r"<main.*?</main>", html, re.S)
    assert title and main
    return re.sub(r"<[^>]+>", " ", title[1] + " " + main[0])


def test_allauths_pages_speak_in_sentence_case_as_the_rest_of_the_site(client: Client) -> None:
    pages = ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
    shown = {path: words_shown(client.get(path).content.decode()) for path in pages}
    assert "Sign in" in shown["/accounts/login/"]
    assert "Reset my password" in shown["/accounts/password/reset/"]
    client.force_login(make_user())
    for path in ["/accounts/password/change/", "/accounts/email/", "/accounts/logout/"]:
        shown[path] = words_shown(client.get(path).content.decode())
    assert "Change password" in shown["/accounts/password/change/"]
    assert "New password (again)" in shown["/accounts/password/change/"]
    for path, words in shown.items():
        assert not TITLE_CASE.findall(words), path


def test_the_confirmation_mails_subject_is_in_sentence_case(client: Client) -> None:
    client.post(
        "/accounts/signup/",
        {"email": "ada@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    (message,) = mail.outbox
    assert message.subject.endswith("Please confirm your email address")


def test_password_reset_answers_the_same_whether_or_not_an_address_has_an_account(
    client: Client,
) -> None:
    make_user("grace@example.com")
    known = client.post("/accounts/password/reset/", {"email": "grace@example.com"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password/reset/done/"
    assert [message.to for message in mail.outbox] == [
        ["grace@example.com"],
        ["nobody@example.com"],
    ]


def test_log_in_with_email_then_log_out(client: Client) -> None:
    make_user("grace@example.com")
    response = client.post(
        "/accounts/login/", {"login": "grace@example.com", "password": PASSWORD}, follow=True
    )
    assert response.context["user"].is_authenticated
    assert "grace@example.com" in response.content.decode()
    response = client.post("/accounts/logout/", follow=True)
    assert not response.context["user"].is_authenticated
    # Said on the page signing out lands on (a flash message: its cookie outlives the session).
    assert response.redirect_chain[-1][0] == "/"
    assert '<p class="message success">You have signed out.</p>' in response.content.decode()


def test_a_wrong_password_is_refused_with_a_message(client: Client) -> None:
    make_user("grace@example.com")
    response = client.post("/accounts/login/", {"login": "grace@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_that_need_an_account_send_visitors_to_log_in(client: Client) -> None:
    for path in ["/chat/", "/generations/", "/account/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_a_password_change_goes_back_to_the_account_page_saying_so(client: Client) -> None:
    user = make_user()
    client.force_login(user)
    new = "an entirely new passphrase 42"
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new, "password2": new},
        follow=True,
    )
    # Not the same empty form again, under allauth's "Password successfully changed."
    assert response.redirect_chain == [("/account/", 302)]
    assert '<p class="message success">Password changed.</p>' in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(new)


def test_allauths_forms_label_fields_without_colons_and_say_things_plainly(
    client: Client,
) -> None:
    signup = client.get("/accounts/signup/").content.decode()
    assert '<label for="id_email">Email</label>' in signup
    assert '<label for="id_password1">Password</label>' in signup
    assert "Have an account?" in signup and "Then please" not in signup
    login = client.get("/accounts/login/").content.decode()
    assert "No account yet?" in login and "then please" not in login
    assert "Email:" not in signup + login
    make_user("grace@example.com")
    refused = client.post("/accounts/login/", {"login": "grace@example.com", "password": "no"})
    assert "The email or password is not correct." in refused.content.decode()


def test_every_account_page_is_under_account_in_the_menu_and_leads_back_to_it(
    client: Client,
) -> None:
    client.force_login(make_user())
    current = '<a href="/account/" aria-current="page">Account</a>'
    assert current in client.get("/account/").content.decode()
    for path in ["/accounts/email/", "/accounts/password/change/"]:
        html = client.get(path).content.decode()
        assert current in html, path
        assert '<p class="back"><a href="/account/">← Account</a></p>' in html, path
    assert current not in client.get("/chat/").content.decode()


def test_signing_up_says_one_thing_not_also_that_you_are_signed_in(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "ada@example.com", "password1": PASSWORD, "password2": PASSWORD},
        follow=True,
    )
    html = response.content.decode()
    assert html.count('<p class="message ') == 1
    assert "Confirmation email sent to ada@example.com." in html
    assert "Successfully signed in" not in html


def test_a_password_reset_mail_names_the_site_and_its_done_page_leads_to_sign_in(
    client: Client, settings: Any
) -> None:
    make_user("grace@example.com")
    client.post("/accounts/password/reset/", {"email": "grace@example.com"})
    (message,) = mail.outbox
    assert message.body.startswith(f"Hello from {settings.SITE_NAME}!")
    assert message.body.rstrip().endswith(settings.SITE_URL)
    assert "testserver" not in message.body.split("\n\n", 1)[0]  # not the request's host

    link = re.search(r"https?://\S+(/accounts/password/reset/key/\S+)", message.body)
    assert link is not None
    form = client.get(link[1], follow=True)
    new = "another long passphrase 42"
    done = client.post(
        form.redirect_chain[-1][0], {"password1": new, "password2": new}, follow=True
    )
    assert "Your password is now changed." in done.content.decode()
    assert 'href="/accounts/login/"' in done.content.decode()
    assert client.login(email="grace@example.com", password=new)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def test_allauths_pages_carry_no_inline_script_or_style_which_the_csp_would_block(
    client: Client,
) -> None:
    client.post(
        "/accounts/signup/",
        {"email": "ada@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    confirm = re.search(r"https?://\S+(/accounts/confirm-email/\S+/)", mail.outbox[0].body)
    assert confirm is not None
    client.post("/accounts/email/", {"email": "ada@work.example", "action_add": ""})
    client.post("/accounts/password/reset/", {"email": "ada@example.com"})
    reset = re.search(r"https?://\S+(/accounts/password/reset/key/\S+)", mail.outbox[-1].body)
    assert reset is not None
    pages = [
        "/accounts/email/",
        "/accounts/password/change/",
        "/accounts/logout/",
        confirm[1],
        "/accounts/password/reset/done/",
        reset[1],
    ]
    shown = {path: client.get(path, follow=True) for path in pages}
    client.logout()
    for path in ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        shown[path] = client.get(path)
    for path, response in shown.items():
        html = response.content.decode()
        assert response.status_code == 200, path
        assert not INLINE_SCRIPT.findall(html), path
        assert " style=" not in html, path
    email_page = shown["/accounts/email/"].content.decode()
    assert "ada@work.example" in email_page
    assert 'name="action_remove" class="danger small" data-confirm=' in email_page
    assert "js/base.js" in email_page  # which asks the question (every page has it)


def test_the_email_page_offers_each_address_only_what_it_can_do(client: Client) -> None:
    user = make_user("ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    EmailAddress.objects.create(user=user, email="ada@work.example", verified=True)
    EmailAddress.objects.create(user=user, email="ada@home.example", verified=False)
    client.force_login(user)
    html = client.get("/accounts/email/").content.decode()
    rows = {
        email: re.search(rf'value="{re.escape(email)}">.*?</form>', html, re.S)
        for email in ["ada@example.com", "ada@work.example", "ada@home.example"]
    }
    primary, work, home = (rows[email][0] for email in rows)  # type: ignore[index]
    # The primary address cannot be removed (allauth says so only after asking) nor made primary.
    assert "action_remove" not in primary and "action_primary" not in primary
    assert "action_send" not in primary  # verified
    assert "action_primary" in work and "action_send" not in work
    assert 'data-confirm="Remove ada@work.example from your account?"' in work
    # allauth refuses an unverified primary while a verified address exists.
    assert "action_primary" not in home and "action_send" in home and "action_remove" in home


def test_an_unverified_address_signs_in_as_the_email_page_says(client: Client) -> None:
    user = make_user("ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    EmailAddress.objects.create(user=user, email="ada@home.example", verified=False)
    client.force_login(user)
    said = "You can sign in with any of these addresses, verified or not."
    assert said in client.get("/accounts/email/").content.decode()
    client.logout()
    client.post("/accounts/login/", {"login": "ada@home.example", "password": PASSWORD})
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_account_pages_preferences_are_saved_with_the_main_button(client: Client) -> None:
    client.force_login(make_user())
    html = client.get("/account/").content.decode()
    assert '<button type="submit">Save</button>' in html  # not class="secondary"
    assert '<label for="id_default_model">Default model for new chats</label>' in html
