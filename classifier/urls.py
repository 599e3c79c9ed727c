from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from classifier import clinic_pages, patient_pages, token_pages, views

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
    path("patients/", patient_pages.patients, name="patients"),
    path("patients/<int:pk>/", patient_pages.patient_detail, name="patient"),
    path("patients/<int:pk>/lesions/", patient_pages.new_lesion, name="patient-new-lesion"),
    path("patients/<int:pk>/report.pdf", patient_pages.patient_report, name="patient-report"),
    path("patients/<int:pk>/export/", patient_pages.patient_export, name="patient-export"),
    path("patients/<int:pk>/erase/", patient_pages.patient_erase, name="patient-erase"),
    path("lesions/<int:pk>/", patient_pages.lesion_detail, name="lesion"),
    path("lesions/<int:pk>/label/", patient_pages.lesion_label, name="lesion-label"),
    path("lesions/<int:pk>/visits/", patient_pages.upload_visit, name="lesion-upload"),
    path("lesions/<int:pk>/report.pdf", patient_pages.lesion_report, name="lesion-report"),
    path("clinic/switch/", clinic_pages.switch_clinic, name="switch-clinic"),
    path("clinic/members/", clinic_pages.members, name="members"),
    path("clinic/audit/", clinic_pages.audit_log_page, name="audit-log"),
    path("account/tokens/", token_pages.api_tokens, name="api-tokens"),
    path("clinic/audit/export.csv", clinic_pages.audit_log_export, name="audit-log-export"),
]
