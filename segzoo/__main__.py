from segzoo.cli import main

raise SystemExit(main())
