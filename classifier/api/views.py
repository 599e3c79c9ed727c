from __future__ import annotations

import json

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import idempotency, records
from classifier.access import CLINIC_HEADER, CLINIC_PARAMETER, current_clinic, current_membership
from classifier.api.filters import AuditEventFilter, ImageFilter, PatientFilter, PredictionFilter
from classifier.api.permissions import ActionPermissions
from classifier.api.serializers import (
    ActivateSerializer,
    AttachSerializer,
    AuditEventSerializer,
    BatchDetailSerializer,
    BatchSerializer,
    ConfirmationRequiredSerializer,
    ImageSerializer,
    LabelledImageSerializer,
    LabelSerializer,
    LesionDetailSerializer,
    LesionSerializer,
    ModelVersionSerializer,
    NotEnoughDataSerializer,
    OperatingPointSerializer,
    PatientSerializer,
    PredictionSerializer,
    TrainingJobSerializer,
    UploadErrorSerializer,
    UploadResultSerializer,
    UploadSerializer,
)
from classifier.api.throttling import UploadRateThrottle
from classifier.audit import Action, AuditEvent, audit, audit_many
from classifier.history import annotate_latest_prediction
from classifier.models import (
    ActivationNeedsConfirmation,
    AttachRefused,
    JobConflict,
    Lesion,
    LesionImage,
    ModelActivation,
    ModelVersion,
    Patient,
    Prediction,
    TrainingJob,
    UploadBatch,
)
from classifier.patient_pages import pdf_response
from classifier.permissions import (
    CANCEL_JOBS,
    CHANGE_VERSIONS,
    LABEL_PERMISSION,
    START_JOBS,
    VIEW_JOBS,
    VIEW_VERSIONS,
)
from classifier.training_data import NotEnoughData
from classifier.uploads import UploadRefused, UploadRejected, not_in_a_clinic, store_uploads

# Every clinic-scoped endpoint takes these: which of your clinics the request works in.
CLINIC_PARAMETERS = [
    OpenApiParameter(
        CLINIC_HEADER,
        int,
        OpenApiParameter.HEADER,
        required=False,
        description="The id of one of your clinics to work in for this request (default: your current clinic). "
        "A clinic you are not a member of answers 404.",
    ),
    OpenApiParameter(
        CLINIC_PARAMETER, int, OpenApiParameter.QUERY, required=False, description=f"As the {CLINIC_HEADER} header."
    ),
]
NOT_FOUND = OpenApiResponse(
    description="Not in the clinic the request works in (the same answer as an id that does not exist), "
    "or X-Clinic / ?clinic= names a clinic you are not a member of."
)


class ClinicScoped:
    """A viewset whose rows belong to the clinic the request works in (classifier.access)."""

    @property
    def clinic(self):
        return current_clinic(self.request, allow_choice=True)

    def require_clinic(self):
        clinic = self.clinic
        if clinic is None:
            refusal = not_in_a_clinic()
            raise PermissionDenied({"detail": refusal.message, "code": refusal.code})
        return clinic


@extend_schema_view(
    list=extend_schema(parameters=CLINIC_PARAMETERS),
    retrieve=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: ImageSerializer, 404: NOT_FOUND}),
)
class ImageViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The images of your clinic, whoever uploaded them, newest first. POST uploads one or more images for
    classification; PATCH attaches a one-off upload to a lesion.

    The list's `status`, `top_class`, `is_malignant` and `is_out_of_distribution` are those of each
    image's latest prediction.
    """

    serializer_class = ImageSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_class = ImageFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return LesionImage.objects.none()
        images = LesionImage.objects.in_clinic(self.clinic).select_related("batch", "lesion")
        return annotate_latest_prediction(images)

    def list(self, request, *args, **kwargs):
        audit(request, Action.VIEWED_HISTORY, clinic=self.clinic, detail={"api": "images"})
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        image = self.get_object()
        audit(request, Action.VIEWED_IMAGE, image)
        return Response(self.get_serializer(image).data)

    action_permissions = {"label": [LABEL_PERMISSION]}  # the only action not gated by the clinic

    def get_throttles(self):
        return [UploadRateThrottle()] if self.action == "create" else super().get_throttles()

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        parameters=[
            *CLINIC_PARAMETERS,
            OpenApiParameter(
                idempotency.HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Any unique string (a UUID): a retry with the same key and request gets the first "
                f"answer again, with `{idempotency.REPLAYED_HEADER}: true`, and creates nothing; the same key "
                "with other files answers 422, and one still being processed 409. Kept "
                "IDEMPOTENCY_KEY_HOURS (24).",
            ),
        ],
        responses={
            201: UploadResultSerializer,
            200: OpenApiResponse(UploadResultSerializer, description="Every file had been uploaded before."),
            400: OpenApiResponse(
                UploadErrorSerializer,
                description="Nothing was stored: `errors` lists every refused file with its reason "
                "(`detail`, `code`, `file` describe the first one), or the request itself was refused "
                "(`no_file`). A request with a too-large file and another refused file is a 400.",
            ),
            403: OpenApiResponse(UploadErrorSerializer, description="You are in no clinic (`no_clinic`)."),
            404: OpenApiResponse(description="`lesion` is not a lesion of the clinic the request works in."),
            413: OpenApiResponse(
                UploadErrorSerializer,
                description="Nothing was stored: more than UPLOAD_MAX_FILES files (`too_many_files`), or every "
                "refused file is too large (`too_large`, each listed in `errors`), so sending fewer bytes helps.",
            ),
        },
    )
    def create(self, request, *args, **kwargs):
        """Upload into the clinic the request works in; with `lesion`, as pictures of that lesion.

        With an `Idempotency-Key` header, a retry of the same request gets the first answer again
        (with `Idempotent-Replayed: true`) and creates nothing."""
        key = idempotency.key_of(request)
        if key is None:
            return self._upload(request)
        fields = {name: value for name, value in request.data.items() if name != "file"}
        fingerprint = idempotency.fingerprint(fields, request.FILES.getlist("file"))
        replayed = idempotency.claim(request.user, key, fingerprint)
        if replayed is not None:
            return replayed
        try:
            response = self._upload(request)
        except BaseException:
            idempotency.release(request.user, key)
            raise
        return idempotency.answer(request.user, key, response)

    def _upload(self, request):
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        clinic = self.clinic
        fields = {key: form.validated_data.get(key) for key in ("taken_at", "age", "sex", "site")}
        lesion_id = form.validated_data.get("lesion")
        if lesion_id is not None:
            fields["lesion"] = get_object_or_404(
                Lesion.objects.in_clinic(clinic).select_related("patient"), pk=lesion_id
            )
        try:
            batch, stored = store_uploads(request.user, form.validated_data["file"], clinic=clinic, **fields)
        except (UploadRefused, UploadRejected) as exc:
            return Response(exc.as_dict(), status=exc.http_status)
        audit_many(request, Action.UPLOADED, [item.image for item in stored if item.created])
        body = UploadResultSerializer(
            {
                "batch": batch.pk if batch else None,
                "batch_url": request.build_absolute_uri(reverse("api:batch-detail", args=[batch.pk]))
                if batch
                else None,
                "images": [
                    {
                        "id": item.image.pk,
                        "created": item.created,
                        "already_uploaded_at": None if item.created else item.image.created_at,
                        "original_filename": item.image.original_filename,
                        "ignored_fields": list(item.ignored_fields),
                        "prediction": item.prediction,
                    }
                    for item in stored
                ],
            },
            context={"request": request},
        ).data
        any_created = any(item.created for item in stored)
        return Response(body, status=status.HTTP_201_CREATED if any_created else status.HTTP_200_OK)

    @extend_schema(
        request=AttachSerializer,
        parameters=CLINIC_PARAMETERS,
        responses={
            200: ImageSerializer,
            400: OpenApiResponse(description="`lesion` names why it cannot be attached (already a picture of "
                                 "another lesion, a contradicting label, the same picture already in that clinic)."),
            404: NOT_FOUND,
        },
        examples=[OpenApiExample("Attach to lesion 12", value={"lesion": 12}, request_only=True)],
    )  # fmt: skip
    def partial_update(self, request, *args, **kwargs):
        """Attach a one-off upload to a lesion of any of your clinics; it moves into the lesion's clinic."""
        image = self.get_object()
        form = AttachSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        unknown = sorted(set(request.data) - {"lesion"})
        if unknown:
            raise ValidationError({name: ["An image's only change here is its lesion."] for name in unknown})
        lesions = Lesion.objects.in_clinics_of(request.user).select_related("patient")
        lesion = get_object_or_404(lesions, pk=form.validated_data["lesion"])
        from_clinic = image.clinic_id
        try:
            with transaction.atomic():
                image.attach_to(lesion)
                audit(request, Action.ATTACHED_IMAGE, image, detail={"lesion": lesion.pk, "from_clinic": from_clinic})
        except AttachRefused as exc:
            raise ValidationError({"lesion": [str(exc)]}) from exc
        image = annotate_latest_prediction(LesionImage.objects.select_related("batch", "lesion")).get(pk=image.pk)
        return Response(self.get_serializer(image).data)

    @extend_schema(request=LabelSerializer, responses={200: LabelledImageSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[ActionPermissions],
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def label(self, request, pk=None):
        """Labellers (the `classifier.change_lesionimage` permission): set the image's confirmed diagnosis
        (one of the seven classes) and how it was confirmed.

        Any clinic's image, as in the admin's labelling queue. An image of a lesion labels the
        lesion, and so all of the lesion's images."""
        image = get_object_or_404(LesionImage.objects.select_related("lesion"), pk=pk)
        form = LabelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with transaction.atomic():
            image.set_label(data["diagnosis"], data["method"], data["note"], by=request.user)
            audit(request, Action.LABELLED, image.lesion or image, detail={"diagnosis": data["diagnosis"]})
        return Response(LabelledImageSerializer(image).data)


@extend_schema_view(
    list=extend_schema(parameters=CLINIC_PARAMETERS),
    retrieve=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: PredictionSerializer, 404: NOT_FOUND}),
)
class PredictionViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Predictions on your clinic's images, newest first; filter by `batch`, `image`, the reading, dates, a search."""

    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return Prediction.objects.none()
        return Prediction.objects.in_clinic(self.clinic)

    def list(self, request, *args, **kwargs):
        audit(request, Action.VIEWED_HISTORY, clinic=self.clinic, detail={"api": "predictions"})
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        prediction = self.get_object()
        audit(request, Action.VIEWED_IMAGE, prediction.image, detail={"prediction": prediction.pk})
        return Response(self.get_serializer(prediction).data)


class TrainingJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Retraining jobs, to holders of the training job permissions (view, add to start one, change to cancel).

    POST {"epochs": 1, "start_from": "active" | "imagenet"} starts one."""

    serializer_class = TrainingJobSerializer
    permission_classes = [ActionPermissions]
    action_permissions = {
        "list": [VIEW_JOBS],
        "retrieve": [VIEW_JOBS],
        "create": [VIEW_JOBS, START_JOBS],
        "cancel": [VIEW_JOBS, CANCEL_JOBS],
    }
    queryset = TrainingJob.objects.select_related("requested_by", "base_version", "result_version")

    @extend_schema(responses={201: TrainingJobSerializer, 400: NotEnoughDataSerializer, 409: UploadErrorSerializer})
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        options = {key: form.validated_data[key] for key in ("epochs", "start_from") if key in form.validated_data}
        try:
            job = TrainingJob.start(request.user, **options)
        except JobConflict as exc:
            return Response({"detail": str(exc), "code": "job_running"}, status=status.HTTP_409_CONFLICT)
        except NotEnoughData as exc:
            body = {"detail": str(exc), "code": "not_enough_data", "counts": exc.counts, "minimum": exc.minimum}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        except ValueError as exc:
            return Response({"detail": str(exc), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TrainingJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued job at once, or a running one at its next epoch. Nothing served changes."""
        job = self.get_object()
        job.request_cancel()
        return Response(self.get_serializer(job).data)


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The registered model versions with their held-out metrics (`classifier.view_modelversion`); activate one
    (or roll back) or choose its operating point (`classifier.change_modelversion`)."""

    serializer_class = ModelVersionSerializer
    permission_classes = [ActionPermissions]
    action_permissions = {
        "list": [VIEW_VERSIONS],
        "retrieve": [VIEW_VERSIONS],
        "activate": [VIEW_VERSIONS, CHANGE_VERSIONS],
        "operating_point": [VIEW_VERSIONS, CHANGE_VERSIONS],
    }
    queryset = ModelVersion.objects.all()

    @extend_schema(
        request=ActivateSerializer, responses={200: ModelVersionSerializer, 409: ConfirmationRequiredSerializer}
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Make this version serve new predictions; workers switch on their next task.

        A version that failed the quality gate, or was never gated and would replace the
        active one, answers 409 with the reasons unless the body has {"confirm": true};
        every activation is recorded (the version's `activations`)."""
        version = self.get_object()
        form = ActivateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            version.activate_confirmed(
                request.user, via=ModelActivation.Via.API, confirmed=form.validated_data["confirm"]
            )
        except ActivationNeedsConfirmation as exc:
            body = {"detail": str(exc), "code": "confirmation_required", "reasons": exc.reasons}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(version).data)

    @extend_schema(request=OperatingPointSerializer, responses={200: ModelVersionSerializer})
    @action(detail=True, methods=["post"], url_path="operating-point")
    def operating_point(self, request, pk=None):
        """Flag new predictions at one of the card's operating points (earlier ones keep their threshold)."""
        version = self.get_object()
        form = OperatingPointSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            version.choose_operating_point(form.validated_data["target_sensitivity"], by=request.user)
        except ValueError as exc:
            raise ValidationError({"target_sensitivity": [str(exc)]}) from exc
        return Response(self.get_serializer(version).data)


PATIENT_EXAMPLE = {
    "id": 7,
    "url": "https://lesionsite.example/api/v1/patients/7/",
    "reference": "MRN-004211",
    "year_of_birth": 1961,
    "sex": "female",
    "skin_type": "II",
    "note": "Atypical naevus syndrome; full-body photography yearly.",
    "lesion_count": 2,
    "lesions_url": "https://lesionsite.example/api/v1/patients/7/lesions/",
    "created_by": "clinician",
    "created_at": "2026-03-02T09:14:05Z",
}
LESION_EXAMPLE = {
    "id": 12,
    "url": "https://lesionsite.example/api/v1/lesions/12/",
    "patient": 7,
    "label": "L3, left scapula",
    "site": "back",
    "side": "left",
    "map_view": "back",
    "map_x": 0.38,
    "map_y": 0.27,
    "status": "monitored",
    "note": "",
    "diagnosis": "",
    "diagnosis_method": "",
    "labelled_by": None,
    "labelled_at": None,
    "image_count": 3,
    "created_by": "clinician",
    "created_at": "2026-03-02T09:16:40Z",
}
BAD_PATIENT = OpenApiResponse(
    description="The field named is wrong: a reference that is empty, over 64 characters or already another "
    "patient's in the clinic, a year of birth in the future, an unknown sex or skin type.",
    examples=[
        OpenApiExample(
            "Duplicated reference",
            value={"reference": ["The clinic already has a patient with the reference 'MRN-004211'."]},
        )
    ],
)
BAD_LESION = OpenApiResponse(
    description="The field named is wrong: an unknown site, side, view or status, a position outside 0..1, or "
    "half a position (map_view, map_x and map_y go together).",
    examples=[OpenApiExample("Unknown site", value={"site": ['"elbow" is not a valid choice.']})],
)


@extend_schema_view(
    list=extend_schema(
        parameters=CLINIC_PARAMETERS, examples=[OpenApiExample("A patient", value=PATIENT_EXAMPLE, response_only=True)]
    ),
    create=extend_schema(
        parameters=CLINIC_PARAMETERS,
        responses={201: PatientSerializer, 400: BAD_PATIENT},
        examples=[
            OpenApiExample(
                "A new patient",
                value={"reference": "MRN-004211", "year_of_birth": 1961, "sex": "female", "skin_type": "II"},
                request_only=True,
            ),
            OpenApiExample("Created", value=PATIENT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
    retrieve=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: PatientSerializer, 404: NOT_FOUND}),
    update=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: PatientSerializer, 400: BAD_PATIENT}),
    partial_update=extend_schema(
        parameters=CLINIC_PARAMETERS,
        responses={200: PatientSerializer, 400: BAD_PATIENT, 404: NOT_FOUND},
        examples=[OpenApiExample("A note", value={"note": "Referred to surgery."}, request_only=True)],
    ),
)
class PatientViewSet(
    ClinicScoped,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Your clinic's patients, by reference; `?search=` finds references containing the text.

    A patient is known by the clinic's own reference (e.g. its record number): store no names."""

    serializer_class = PatientSerializer
    filterset_class = PatientFilter
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Patient.objects.none()
        patients = Patient.objects.in_clinic(self.clinic).with_lesion_counts().select_related("created_by")
        return patients.order_by("reference", "id")  # an aggregate drops the default order

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["clinic"] = self.clinic
        return context

    def list(self, request, *args, **kwargs):
        audit(request, Action.LISTED_PATIENTS, clinic=self.clinic)
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        patient = self.get_object()
        audit(request, Action.VIEWED_PATIENT, patient)
        return Response(self.get_serializer(patient).data)

    def perform_create(self, serializer):
        clinic = self.require_clinic()
        with transaction.atomic():
            patient = _saved(serializer, clinic=clinic, created_by=self.request.user)
            audit(self.request, Action.CREATED_PATIENT, patient)
        patient.lesion_count = 0

    def perform_update(self, serializer):
        with transaction.atomic():
            patient = _saved(serializer)
            audit(self.request, Action.CHANGED_PATIENT, patient, detail={"fields": sorted(serializer.validated_data)})
        patient.lesion_count = patient.lesions.count()

    @extend_schema(
        methods=["GET"],
        parameters=CLINIC_PARAMETERS,
        responses={200: LesionSerializer(many=True), 404: NOT_FOUND},
        examples=[OpenApiExample("A lesion", value=[LESION_EXAMPLE], response_only=True)],
    )
    @extend_schema(
        methods=["POST"],
        parameters=CLINIC_PARAMETERS,
        request=LesionSerializer,
        responses={201: LesionSerializer, 400: BAD_LESION, 404: NOT_FOUND},
        examples=[
            OpenApiExample(
                "A lesion on the body map",
                value={
                    "label": "L3, left scapula",
                    "site": "back",
                    "side": "left",
                    "map_view": "back",
                    "map_x": 0.38,
                    "map_y": 0.27,
                },
                request_only=True,
            ),  # fmt: skip
            OpenApiExample("Created", value=LESION_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    @action(detail=True, methods=["get", "post"], serializer_class=LesionSerializer, filterset_class=None)
    def lesions(self, request, pk=None):
        """GET the patient's lesions, oldest first; POST adds one (its site, side, body-map position, label)."""
        patient = self.get_object()
        if request.method == "POST":
            form = LesionSerializer(data=request.data, context=self.get_serializer_context())
            form.is_valid(raise_exception=True)
            with transaction.atomic():
                lesion = form.save(patient=patient, created_by=request.user)
                lesion.patient = patient
                audit(request, Action.CREATED_LESION, lesion)
            lesion.image_count = 0
            return Response(LesionSerializer(lesion, context=self.get_serializer_context()).data, status=201)
        audit(request, Action.VIEWED_PATIENT, patient, detail={"api": "lesions"})
        lesions = patient.lesions.annotate(image_count=Count("images")).select_related("created_by", "labelled_by")
        page = self.paginate_queryset(lesions.order_by("created_at", "id"))
        data = LesionSerializer(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)


def _saved(serializer, **fields):
    """serializer.save(), with a duplicate reference saved meanwhile by someone else answered as a 400."""
    try:
        with transaction.atomic():
            return serializer.save(**fields)
    except IntegrityError as exc:
        raise ValidationError({"reference": ["The clinic already has a patient with this reference."]}) from exc


@extend_schema_view(
    retrieve=extend_schema(
        parameters=CLINIC_PARAMETERS,
        responses={200: LesionDetailSerializer, 404: NOT_FOUND},
    ),
    update=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: LesionDetailSerializer, 400: BAD_LESION}),
    partial_update=extend_schema(
        parameters=CLINIC_PARAMETERS,
        responses={200: LesionDetailSerializer, 400: BAD_LESION, 404: NOT_FOUND},
        examples=[OpenApiExample("Excised", value={"status": "excised"}, request_only=True)],
    ),
)
class LesionViewSet(ClinicScoped, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """A lesion of one of your clinic's patients, with its timeline: its images by the date they were taken,
    each with its latest prediction. PUT or PATCH changes its site, position, label, status or note."""

    serializer_class = LesionDetailSerializer
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Lesion.objects.none()
        lesions = Lesion.objects.in_clinic(self.clinic).select_related("patient", "created_by", "labelled_by")
        return lesions.annotate(image_count=Count("images"))

    def retrieve(self, request, *args, **kwargs):
        lesion = self.get_object()
        audit(request, Action.VIEWED_LESION, lesion)
        return Response(self.get_serializer(lesion).data)

    def perform_update(self, serializer):
        with transaction.atomic():
            lesion = serializer.save()
            audit(self.request, Action.CHANGED_LESION, lesion, detail={"fields": sorted(serializer.validated_data)})


NOT_A_MANAGER = OpenApiResponse(description="You are not a manager of the clinic the request works in.")


@extend_schema_view(
    list=extend_schema(
        parameters=CLINIC_PARAMETERS, responses={200: AuditEventSerializer(many=True), 403: NOT_A_MANAGER}
    )
)
class AuditEventViewSet(ClinicScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Clinic managers: the clinic's audit log, newest first: who read or changed which records, when, from where.

    Filter by `user`, `action`, `patient` (its id: kept after an erasure) and `after` / `before`."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        membership = current_membership(self.request, allow_choice=True)
        if membership is None or not membership.is_manager:
            raise PermissionDenied("Only the clinic's managers read its audit log.")
        return AuditEvent.objects.in_clinic(membership.clinic).order_by("-at", "-id")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit(request, Action.VIEWED_AUDIT_LOG, detail={"api": "audit-events"})
        return response


class PDFRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/pdf`; the views answer the PDF bytes themselves."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class ReportView(APIView):
    """A PDF report of a record of the clinic the request works in; errors are answered in JSON."""

    renderer_classes = [JSONRenderer, PDFRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):  # an error: JSON whatever the client accepted
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


REPORT_RESPONSES = {
    (200, "application/pdf"): OpenApiResponse(
        OpenApiTypes.BINARY,
        description="The PDF: the disclaimer, the patient's details, and per lesion its body-map position, "
        "timeline thumbnails with heatmaps, latest reading, change flags and notes; who generated it and when.",
    ),
    401: OpenApiResponse(description="No token, or a wrong one."),
    404: NOT_FOUND,
}


class PatientReportView(ReportView):
    @extend_schema(operation_id="patients_report_pdf", parameters=CLINIC_PARAMETERS, responses=REPORT_RESPONSES,
                   tags=["patients"])  # fmt: skip
    def get(self, request, pk: int):
        """A patient's PDF report: every lesion of the patient. Audited as a PDF export."""
        clinic = current_clinic(request, allow_choice=True)
        patient = get_object_or_404(Patient.objects.in_clinic(clinic).select_related("clinic"), pk=pk)
        pdf = records.patient_report_pdf(patient, request.user)
        audit(request, Action.EXPORTED_PDF, patient, detail={"report": "patient", "api": "report"})
        return pdf_response(pdf, f"lesionsite-patient-{patient.pk}-{timezone.localdate():%Y-%m-%d}.pdf")


class LesionReportView(ReportView):
    @extend_schema(operation_id="lesions_report_pdf", parameters=CLINIC_PARAMETERS, responses=REPORT_RESPONSES,
                   tags=["lesions"])  # fmt: skip
    def get(self, request, pk: int):
        """One lesion's PDF report, with the patient's details. Audited as a PDF export."""
        clinic = current_clinic(request, allow_choice=True)
        lesion = get_object_or_404(Lesion.objects.in_clinic(clinic).select_related("patient__clinic"), pk=pk)
        pdf = records.lesion_report_pdf(lesion, request.user)
        audit(request, Action.EXPORTED_PDF, lesion, detail={"report": "lesion", "api": "report"})
        return pdf_response(pdf, f"lesionsite-lesion-{lesion.pk}-{timezone.localdate():%Y-%m-%d}.pdf")


@extend_schema_view(
    list=extend_schema(parameters=CLINIC_PARAMETERS),
    retrieve=extend_schema(parameters=CLINIC_PARAMETERS, responses={200: BatchDetailSerializer, 404: NOT_FOUND}),
)
class BatchViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your clinic's multi-file uploads, newest first, with their predictions' progress; one batch lists
    every file's prediction, most suspicious first. Every multi-file upload answers with its `batch_url`."""

    serializer_class = BatchSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return UploadBatch.objects.none()
        batches = UploadBatch.objects.in_clinic(self.clinic).select_related("owner")
        # An aggregate drops the default order.
        return batches.with_status_counts().order_by("-created_at", "-id") if self.action == "list" else batches

    def get_serializer_class(self):
        return BatchDetailSerializer if self.action == "retrieve" else BatchSerializer

    def list(self, request, *args, **kwargs):
        audit(request, Action.VIEWED_HISTORY, clinic=self.clinic, detail={"api": "batches"})
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        batch = self.get_object()
        audit(request, Action.VIEWED_BATCH, batch)
        return Response(self.get_serializer(batch).data)
