from django.contrib import admin
from django.urls import include, path

from config import views
from config.health import healthz

admin.site.site_header = "Switchboard admin"
admin.site.site_title = "Switchboard admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("chat/", include("chat.urls")),
    path("generations/", include("generations.urls")),
]
