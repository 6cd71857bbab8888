from rvos.cli import main

raise SystemExit(main())
