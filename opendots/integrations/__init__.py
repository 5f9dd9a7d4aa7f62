"""OpenDOTS next to other tools: FastNetMon's notify hook, and a server + client agent run as real processes
(the attack lab demo, its end-to-end tests and the mitigation-signal benchmark drive them)."""
