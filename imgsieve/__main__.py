"""Run the imgsieve command line as `python -m imgsieve`."""

from imgsieve.cli import main

raise SystemExit(main())
