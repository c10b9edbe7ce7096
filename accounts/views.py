from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.decorators import ratelimit

from accounts import services
from accounts.connect import ConnectError, connect_complete, connect_start, connect_take_state
from accounts.forms import PasteKeyForm, PreferencesForm
from accounts.http import AuthedRequest
from accounts.models import OpenRouterKey
from openrouter.errors import OpenRouterError


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    """Where to return after connecting: a path on this site, never another host."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("accounts:account")


@login_required
def account(request: AuthedRequest) -> HttpResponse:
    key = OpenRouterKey.objects.filter(user=request.user).first()
    if request.method == "POST":
        form = PreferencesForm(request.POST, instance=request.user)
        if form.is_valid():
            form.save()
            messages.success(request, "Preferences saved.")
            return redirect("accounts:account")
    else:
        form = PreferencesForm(instance=request.user)
    context = {
        "key": key,
        "credits": services.credits_cached(user=request.user) if key else None,
        "form": form,
        "paste_form": PasteKeyForm(),
    }
    # A form sent back with its errors is a refused request, as on every page of ours (README).
    return render(request, "accounts/account.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def credits(request: AuthedRequest) -> JsonResponse:
    """The key's figures for the account page, fetched by the page in the background."""
    try:
        info = services.credits_fetch(user=request.user)
    except services.NotConnected:
        return JsonResponse({"error": services.NotConnected.message}, status=404)
    except OpenRouterError as exc:
        return JsonResponse({"error": exc.message}, status=502)
    fields = ["label", "limit", "limit_remaining", "limit_reset", "usage", "usage_daily"]
    fields += ["usage_weekly", "usage_monthly", "is_free_tier"]
    return JsonResponse({field: info.get(field) for field in fields})


@login_required
@require_GET
@ratelimit(key="user", rate="10/m")
@ratelimit(key="ip", rate="30/m")
def connect(request: AuthedRequest) -> HttpResponse:
    url = connect_start(
        session=request.session,
        user=request.user,
        callback_url=request.build_absolute_uri(reverse("accounts:callback")),
        next_url=_safe_next(request, request.GET.get("next")),
    )
    return redirect(url)


@login_required
@require_GET
def callback(request: AuthedRequest) -> HttpResponse:
    try:
        pending = connect_take_state(session=request.session, state=request.GET.get("state", ""))
    except ConnectError as exc:
        messages.error(request, exc.message)
        return redirect("accounts:account")
    code = request.GET.get("code", "")
    if request.GET.get("error") or not code:
        messages.warning(request, "Connecting OpenRouter was cancelled; nothing was stored.")
        return redirect(pending.next_url)
    try:
        connect_complete(user=request.user, pending=pending, code=code)
    except ConnectError as exc:
        messages.error(request, exc.message)
        return redirect(pending.next_url)
    messages.success(request, "Your OpenRouter account is connected.")
    return redirect(pending.next_url)


@sensitive_post_parameters("key")
@login_required
@require_POST
@ratelimit(key="user", rate="5/m")
@ratelimit(key="ip", rate="20/m")
def paste_key(request: AuthedRequest) -> HttpResponse:
    form = PasteKeyForm(request.POST)
    if form.is_valid():
        try:
            services.api_key_paste(user=request.user, plain_key=form.cleaned_data["key"])
        except services.KeyRejected as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Your OpenRouter key is checked and stored.")
    else:
        messages.error(request, "Paste a key first.")
    return redirect(_safe_next(request, request.POST.get("next")))


@login_required
@require_POST
def disconnect(request: AuthedRequest) -> HttpResponse:
    if services.api_key_delete(user=request.user):
        messages.success(
            request,
            "OpenRouter is disconnected and the key is deleted here. "
            "You can also revoke it on OpenRouter.",
        )
    return redirect("accounts:account")
