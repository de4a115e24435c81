"""kdteach.lesson"""
