from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("account/", views.account, name="account"),
    path("account/credits.json", views.credits, name="credits"),
    path("account/key/", views.paste_key, name="paste_key"),
    path("account/disconnect/", views.disconnect, name="disconnect"),
    path("connect/openrouter/", views.connect, name="connect"),
    path("connect/openrouter/callback/", views.callback, name="callback"),
]
