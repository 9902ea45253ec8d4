from innosystem.cli import main

raise SystemExit(main())
