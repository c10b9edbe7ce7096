"""Support's view of generations: find one, see why it failed, open its files, run it again,
cancel one in flight."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from generations import services
from generations.models import Generation, GenerationOutput


class GenerationOutputInline(admin.TabularInline):
    model = GenerationOutput
    fields = ("index", "link", "content_type", "size", "sha256", "created_at")
    readonly_fields = fields
    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="file")
    def link(self, output: GenerationOutput) -> str:
        # Staff download through GenerationAdmin.download, which checks staff rights rather
        # than ownership; MEDIA_ROOT itself is never served.
        url = reverse("admin:generations_output_download", args=[output.pk])
        return format_html('<a href="{}">{}</a>', url, output.download_name)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "short_prompt", "model", "state", "error_code", "created_at")
    list_filter = ("state", "extension", "error_code", "created_at")
    search_fields = ("prompt", "user__email", "model")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "user",
        "state",
        "progress",
        "error_code",
        "error_message",
        "attempts",
        "claim_token",
        "claimed_at",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = (
        ("user", "state"),
        "prompt",
        ("model", "extension", "num_inference_steps", "num_outputs"),
        ("error_code", "error_message"),
        "progress",
        ("attempts", "claim_token", "claimed_at"),
        ("created_at", "started_at", "finished_at"),
    )
    inlines = [GenerationOutputInline]
    actions = ["retry", "cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # generations are started by their owner, with their key

    def has_change_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        # A finished generation is a record of what was asked and what came of it: its page
        # is read-only (delete and the list's actions stay).
        if obj is not None and not obj.in_flight:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="prompt")
    def short_prompt(self, generation: Generation) -> str:
        return generation.prompt[:80]

    @admin.action(description="Retry the selected failed generations")
    def retry(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        retried = skipped = 0
        for generation in queryset.filter(state=Generation.State.FAILED).select_related("user"):
            try:
                retried += services.generation_retry(generation=generation)
            except services.GenerationLimitReached:
                skipped += 1
        level = messages.SUCCESS if retried else messages.WARNING
        self.message_user(request, f"Retrying {retried} generation(s).", level)
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: their owner has too many in flight.", messages.WARNING
            )

    @admin.action(description="Cancel the selected queued or running generations")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        in_flight = queryset.filter(state__in=services.IN_FLIGHT)
        cancelled = sum(services.generation_cancel(generation=g) for g in in_flight)
        level = messages.SUCCESS if cancelled else messages.WARNING
        self.message_user(request, f"Cancelled {cancelled} generation(s).", level)

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "outputs/<int:pk>/download/",
            self.admin_site.admin_view(self.download),
            name="generations_output_download",
        )
        return [download, *super().get_urls()]

    def download(self, request: HttpRequest, pk: int) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        output = get_object_or_404(GenerationOutput, pk=pk)
        try:
            handle = output.file.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        return FileResponse(handle, as_attachment=True, filename=output.download_name)

    def delete_model(self, request: HttpRequest, obj: Generation) -> None:
        services.generation_delete(generation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        for generation in queryset:
            services.generation_delete(generation=generation)
