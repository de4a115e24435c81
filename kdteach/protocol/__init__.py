"""kdteach.protocol"""
