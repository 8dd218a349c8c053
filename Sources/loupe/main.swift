import LoupeCLI

Loupe.main()
