"""Routes of the test events and post-live reports (views in report_views.py, CSV in report_csv.py)."""

from django.urls import path

from project.control import report_csv, report_views

urlpatterns = [
    path("test-events/", report_views.test_events_page, name="control_test_events"),
    path("test-events/send/", report_views.send_test_event, name="control_send_test_event"),
    path("sessions/", report_views.session_list, name="control_sessions"),
    path("sessions/<int:session_id>/", report_views.session_report, name="control_session_report"),
    path("sessions/<int:session_id>/delete/", report_views.delete_test_session, name="control_delete_test_session"),
    path("sessions/<int:session_id>/events.csv", report_csv.events_csv, name="control_events_csv"),
    path("sessions/<int:session_id>/queue-items.csv", report_csv.queue_items_csv, name="control_queue_items_csv"),
]
