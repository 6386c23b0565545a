"""twinflow: digital-human assets and videos from recordings of a person.

Every workflow stage is a module runnable as ``python -m twinflow.<stage>``; the Snakemake rules in
``workflow/rules`` only declare files and call these modules.
"""

__version__ = "0.1.0"
