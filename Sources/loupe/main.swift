import LoupeCLI

Interrupts.install()
Loupe.main()
