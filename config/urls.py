from django.contrib import admin
from django.urls import include, path

from config import views
from config.health import healthz

admin.site.site_header = "Switchboard admin"
admin.site.site_title = "Switchboard admin"
# No navigation column beside every page (the index lists the same models): at 1280 px it left
# the lists ~630 px, and their tables scrolled sideways.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("chat/", include("chat.urls")),
    path("generations/", include("generations.urls")),
]
