from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 20
    # A batch page fetches all of a batch's predictions in one request.
    page_size_query_param = "page_size"
    max_page_size = 500
