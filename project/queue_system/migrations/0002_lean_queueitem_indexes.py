# Fewer indexes on QueueItem and room in its pages for HOT updates (see QueueItem.Meta).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queue_system', '0001_initial'),
        ('tiktok_events', '0001_initial'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='queueitem',
            name='queueitem_undispatched',
        ),
        migrations.AlterField(
            model_name='queueitem',
            name='live_event',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='queue_items', to='tiktok_events.liveevent'),
        ),
        migrations.AlterField(
            model_name='queueitem',
            name='service',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='queue_items', to='queue_system.service'),
        ),
        # Free space in each page lets the dispatched_at update stay in the page
        # without new index entries (a HOT update); new pages get it, old ones keep theirs.
        migrations.RunSQL(
            "ALTER TABLE queue_system_queueitem SET (fillfactor = 70)",
            reverse_sql="ALTER TABLE queue_system_queueitem RESET (fillfactor)",
        ),
    ]
