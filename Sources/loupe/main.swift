import Interpret
import LoupeCLI

Interrupts.install()
// Long loops report their progress on stderr (ProgressDisplay; off with --quiet).
Progress.setHandler { ProgressDisplay.shared.report($0, $1, $2) }
Loupe.runMain()
