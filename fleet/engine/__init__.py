"""The real Pulumi engine through the Automation API: the driver, its messages, plugins and the verbs.
"""
