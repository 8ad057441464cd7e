"""oaviz.services"""
