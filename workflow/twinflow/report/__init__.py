"""The run report: ``results/report/index.html`` and one page per twin (``python -m twinflow.report``).

collect.py gathers the run's files into data, contact.py makes contact sheets of videos, plots.py
draws the charts (matplotlib), build.py renders the Jinja2 templates in templates/.
"""
