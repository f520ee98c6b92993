"""China's working-day schedule as data (``cn_workdays.json``), read by ``activities.calendar``; ``build.py``
regenerated it once from ``chinesecalendar`` and is not imported at runtime."""
