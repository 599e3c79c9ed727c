from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from classifier import views

app_name = "classifier"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="classifier:upload"), name="home"),
    path("upload/", views.upload, name="upload"),
    path("predictions/<int:pk>/", views.prediction_detail, name="prediction"),
    path("batches/<int:pk>/", views.batch_detail, name="batch"),
    path("history/", views.history, name="history"),
    path("history/export.csv", views.history_export, name="history-export"),
    path("images/<int:pk>/note/", views.image_note, name="image-note"),
    path("images/<int:pk>/file/", views.image_file, name="image-file"),
    path("images/<int:pk>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
]
