"""Learners (the RL that maximises skill rewards), networks, replay and the jitted training loop."""
