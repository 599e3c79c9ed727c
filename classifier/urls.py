from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from classifier import clinic_pages, views

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
    path("images/<int:pk>/lesion/", views.attach_image, name="image-attach"),
    path("clinic/switch/", clinic_pages.switch_clinic, name="switch-clinic"),
    path("clinic/members/", clinic_pages.members, name="members"),
    path("clinic/audit/", clinic_pages.audit_log_page, name="audit-log"),
    path("clinic/audit/export.csv", clinic_pages.audit_log_export, name="audit-log-export"),
]
