"""An app with an impossible setting: importing it fails (one line, naming this line)."""

from streamlog import App

app = App("bad-setting", topic_partitions=0)
