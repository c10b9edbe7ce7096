from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("models.json", views.models_json, name="models"),
    path("list/", views.conversation_list, name="list"),
    path("<int:conversation_id>/", views.conversation, name="conversation"),
    path("<int:conversation_id>/messages/", views.conversation_messages, name="messages"),
    path("<int:conversation_id>/rename/", views.conversation_rename, name="rename"),
    path("<int:conversation_id>/settings/", views.conversation_settings, name="settings"),
    path("<int:conversation_id>/model/", views.conversation_model, name="model"),
    path("<int:conversation_id>/delete/", views.conversation_delete, name="delete"),
]
