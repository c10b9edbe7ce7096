"""Pages of the 3D generations: gallery and form, detail with the viewer, downloads, actions.

Everything is looked up through the signed-in user: another user gets a 404 for a generation or
a file that is not theirs, never a hint that it exists; someone signed out is asked to sign in,
whatever the address (so that says nothing either).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from accounts.http import AuthedRequest
from accounts.models import OpenRouterKey
from generations import services
from generations.forms import GenerationForm
from generations.models import Generation, GenerationOutput

PAGE_SIZE = 24


def per_ip_rate(group: str, request: HttpRequest) -> str:
    """Generation starts per address per hour, across accounts (read per request, so a test or
    a settings change applies at once)."""
    return f"{settings.GENERATIONS_PER_HOUR_PER_IP}/h"


@login_required
def index(request: AuthedRequest) -> HttpResponse:
    return _gallery(request, GenerationForm())


@require_http_methods(["GET", "POST"])
@login_required
@ratelimit(key="ip", rate=per_ip_rate, method="POST")  # a reload (GET) starts nothing
def create(request: AuthedRequest) -> HttpResponse:
    if request.method == "GET":  # a reload of a form sent back with its errors: the form's page
        return redirect("generations:index")
    form = GenerationForm(request.POST)
    if not _connected(request):
        messages.error(request, "Connect your OpenRouter account first.")
        return redirect("generations:index")
    if not form.is_valid():
        return _gallery(request, form, status=400)
    try:
        generation = services.generation_start(user=request.user, **form.cleaned_data)
    except services.GenerationLimitReached as exc:
        form.add_error(None, exc.message)
        return _gallery(request, form, status=429)
    return redirect(generation)


@login_required
def detail(request: AuthedRequest, pk: int) -> HttpResponse:
    generation = _own(request, pk)
    return render(request, "generations/detail.html", {"generation": generation})


@login_required
def output(request: AuthedRequest, pk: int, index: int) -> FileResponse:
    """The stored file, to its owner only. An attachment unless ``?inline=1`` asks for the
    viewer's copy, which is granted only to files the viewer can draw."""
    item = get_object_or_404(
        GenerationOutput, generation_id=pk, generation__user_id=request.user.pk, index=index
    )
    inline = request.GET.get("inline") == "1" and item.viewable
    try:
        handle = item.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=item.download_name,
        content_type=item.content_type,
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_POST
def retry(request: AuthedRequest, pk: int) -> HttpResponse:
    generation = _own(request, pk)
    if not generation.retry_can_help:  # no Retry is offered for it; said if asked anyway
        messages.info(
            request, f"The same request would be refused again: {generation.refusal_advice}."
        )
        return _back(request, generation)
    try:
        if services.generation_retry(generation=generation):
            messages.success(request, "Trying again.")
        else:
            messages.info(request, "Only a failed or cancelled generation can be run again.")
    except services.GenerationLimitReached as exc:
        messages.error(request, exc.message)
    return _back(request, generation)


@login_required
@require_POST
def cancel(request: AuthedRequest, pk: int) -> HttpResponse:
    generation = _own(request, pk)
    if services.generation_cancel(generation=generation):
        messages.success(request, "Generation cancelled.")
    else:
        messages.info(request, "It had already finished, so there was nothing to cancel.")
    return _back(request, generation)


def _back(request: AuthedRequest, generation: Generation) -> HttpResponse:
    """After an action: back to the cards when a card's button sent it, else to its page."""
    if request.POST.get("from") == "gallery":
        return redirect("generations:index")
    return redirect(generation)


@login_required
@require_POST
def delete(request: AuthedRequest, pk: int) -> HttpResponse:
    services.generation_delete(generation=_own(request, pk))
    messages.success(request, "Generation deleted, with its files.")
    return redirect("generations:index")


def _own(request: AuthedRequest, pk: int) -> Generation:
    queryset = Generation.objects.filter(user=request.user).prefetch_related("outputs")
    return get_object_or_404(queryset, pk=pk)


def _connected(request: AuthedRequest) -> bool:
    return OpenRouterKey.objects.filter(user=request.user).exists()


def _gallery(request: AuthedRequest, form: GenerationForm, status: int = 200) -> HttpResponse:
    generations = Generation.objects.filter(user=request.user).prefetch_related("outputs")
    page = Paginator(generations, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "connected": _connected(request)}
    return render(request, "generations/index.html", context, status=status)
