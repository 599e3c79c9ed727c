"""Plain helpers of the classifier app that need no Django: decoding and re-encoding uploads
(imaging, png) and the statistics the admin shows (intervals). Tested as plain functions."""
