"""Insurance Navigator document pipeline: Django project package."""
