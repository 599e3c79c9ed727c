"""gunicorn reads this file from its working directory (the image's /app, the checkout for `bench/`).

gunicorn writes no access log unless one is asked for (--access-logfile -); when it is, a request is
logged by its path, never its query string (%(U)s, not %(r)s or %(q)s), and without the referrer,
which carries the previous page's query: a search such as /history/?q=... is patient data.
"""

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
