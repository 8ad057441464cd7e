"""oaviz.commands"""
