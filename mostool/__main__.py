from mostool.cli import main

raise SystemExit(main())
