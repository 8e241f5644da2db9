"""The streamer's control room (/control/): live queues, test events, post-live reports."""
