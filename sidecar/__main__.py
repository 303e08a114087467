from tailboard.sidecar.cli import main

raise SystemExit(main())
