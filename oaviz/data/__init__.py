"""oaviz.data"""
